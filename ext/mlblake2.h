/* The vendored BLAKE2b reference implementation (ext/blake2/, unmodified), compiled into the
 * extension module: the reference sources expect <stdint.h> to be included before them. */
#ifndef MLCACHE_BLAKE2_H
#define MLCACHE_BLAKE2_H
#include <stdint.h>
#include <stddef.h>
#include "blake2/blake2b-ref.c"
#endif
