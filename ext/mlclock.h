/* The compiled tier's default clock: wall-clock seconds, read as cheaply as the OS allows.
 * On Linux CLOCK_REALTIME_COARSE costs ~5 ns (vs ~25 ns precise) at the price of a resolution
 * of one kernel tick (1-4 ms); TTLs are seconds, so L1 may keep an entry up to one tick late. */
#ifndef MLCACHE_CLOCK_H
#define MLCACHE_CLOCK_H

#ifdef _WIN32
#include <windows.h>
static inline double ml_coarse_now(void) {
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft);
    unsigned long long t = ((unsigned long long)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    return (double)(t - 116444736000000000ULL) * 1e-7;
}
#else
#include <time.h>
static inline double ml_coarse_now(void) {
    struct timespec ts;
#if defined(CLOCK_REALTIME_COARSE)
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
#else
    clock_gettime(CLOCK_REALTIME, &ts);
#endif
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

#endif
