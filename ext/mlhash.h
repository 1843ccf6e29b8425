/* Helpers for the decorator's hit path.
 *
 * ml_pair_hash: hash((a, b)) from hash(a) and hash(b) without building the tuple: CPython's
 * tuple hash (xxHash-based, Objects/tupleobject.c, since 3.8). The module checks at import
 * that it agrees with hash() on this interpreter and builds real tuples otherwise.
 *
 * ml_install_call: route calls with keyword arguments to a Python method, so that the
 * compiled __call__ can take *args only (Cython builds a dict for **kwargs on every call). */
#ifndef MLCACHE_HASH_H
#define MLCACHE_HASH_H
#include <Python.h>

#if SIZEOF_PY_UHASH_T > 4
#define ML_XXPRIME_1 ((Py_uhash_t)11400714785074694791ULL)
#define ML_XXPRIME_2 ((Py_uhash_t)14029467366897019727ULL)
#define ML_XXPRIME_5 ((Py_uhash_t)2870177450012600261ULL)
#define ML_XXROTATE(x) ((x << 31) | (x >> 33))
#else
#define ML_XXPRIME_1 ((Py_uhash_t)2654435761UL)
#define ML_XXPRIME_2 ((Py_uhash_t)2246822519UL)
#define ML_XXPRIME_5 ((Py_uhash_t)374761393UL)
#define ML_XXROTATE(x) ((x << 13) | (x >> 19))
#endif

static inline Py_hash_t ml_pair_hash(Py_hash_t a, Py_hash_t b) {
    Py_uhash_t acc = ML_XXPRIME_5;
    acc += (Py_uhash_t)a * ML_XXPRIME_2;
    acc = ML_XXROTATE(acc);
    acc *= ML_XXPRIME_1;
    acc += (Py_uhash_t)b * ML_XXPRIME_2;
    acc = ML_XXROTATE(acc);
    acc *= ML_XXPRIME_1;
    acc += 2 ^ (ML_XXPRIME_5 ^ 3527539UL);
    if (acc == (Py_uhash_t)-1) {
        return 1546275796;
    }
    return (Py_hash_t)acc;
}

#define ML_CALL_ROUTER(NAME)                                                              \
    static ternaryfunc NAME##_base = NULL;                                                \
    static PyObject *NAME##_method = NULL;                                                \
    static PyObject *NAME##_call(PyObject *self, PyObject *args, PyObject *kwds) {        \
        if (kwds == NULL || PyDict_GET_SIZE(kwds) == 0) {                                 \
            return NAME##_base(self, args, NULL);                                         \
        }                                                                                 \
        PyObject *method = PyObject_GetAttr(self, NAME##_method);                         \
        if (method == NULL) {                                                             \
            return NULL;                                                                  \
        }                                                                                 \
        PyObject *result = PyObject_CallFunctionObjArgs(method, args, kwds, NULL);       \
        Py_DECREF(method);                                                                \
        return result;                                                                    \
    }                                                                                     \
    static int NAME##_install(PyTypeObject *type, const char *method) {                   \
        NAME##_method = PyUnicode_InternFromString(method);                               \
        if (NAME##_method == NULL) {                                                      \
            return -1;                                                                    \
        }                                                                                 \
        NAME##_base = type->tp_call;                                                      \
        type->tp_call = NAME##_call;                                                      \
        PyType_Modified(type);                                                            \
        return 0;                                                                         \
    }

ML_CALL_ROUTER(ml_hit)
ML_CALL_ROUTER(ml_bound_hit)

/* Vectorcall (PEP 590) for a type whose instances keep their vectorcallfunc at ``offset``:
 * calls from the interpreter then pass arguments in an array, with no tuple built. */
typedef PyObject *(*ml_vectorcallfunc)(PyObject *, PyObject **, size_t, PyObject *);

static int ml_enable_vectorcall(PyTypeObject *type, Py_ssize_t offset) {
    type->tp_vectorcall_offset = offset;
    type->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    PyType_Modified(type);
    return 0;
}

static inline Py_ssize_t ml_nargs(size_t nargsf) { return PyVectorcall_NARGS(nargsf); }

#endif
