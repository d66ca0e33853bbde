/*
 * A caching allocator behind every array hepml makes.
 *
 * Why: touching freshly mapped memory costs ~11 us per 4 KiB page on the
 * course machines (PERF_NOTES.md), and glibc hands large blocks back to the
 * OS on free, so a training step that allocates its activations anew faults
 * every page in again. We keep freed blocks in per-size-class free lists and
 * hand them out again: a steady-state step of the same shapes reuses the same
 * pages and makes no new page faults.
 *
 * Blocks are owned by a NumPy array through a capsule base object, so
 * `t.numpy()` stays zero-copy and the block returns to the pool whenever the
 * last NumPy view of it dies. Everything here runs with the GIL held.
 */
#include "hm.h"
#include <stdlib.h>
#include <string.h>

#define HM_POOL_CLASSES 240
#define HM_ALIGN 64

typedef struct hm_block { struct hm_block *next; } hm_block;

static hm_block *free_lists[HM_POOL_CLASSES];
static size_t cached_bytes = 0;
static size_t pool_limit = (size_t)4 << 30;   /* HEPML_POOL_LIMIT_MB overrides */
static uint64_t n_hits = 0, n_misses = 0;
static size_t live_bytes = 0, peak_live_bytes = 0;

/* Size classes: 64 B and up in steps of a quarter power of two, so no block
 * wastes more than 25 %. */
static int size_class(size_t bytes, size_t *out_bytes) {
    size_t s = 64;
    int c = 0;
    if (bytes < 64) bytes = 64;
    /* find the power of two p with p <= bytes < 2p, then the quarter step */
    while (s * 2 <= bytes && c < HM_POOL_CLASSES - 8) { s *= 2; c += 4; }
    for (int q = 0; q < 4; q++) {
        size_t cand = s + (s / 4) * (size_t)q;
        if (cand >= bytes) { *out_bytes = cand; return c + q; }
    }
    *out_bytes = s * 2;
    return c + 4;
}

static void *pool_get(size_t bytes, int *cls, size_t *cbytes) {
    *cls = size_class(bytes, cbytes);
    if (*cls >= HM_POOL_CLASSES) return NULL;
    hm_block *b = free_lists[*cls];
    if (b) {
        free_lists[*cls] = b->next;
        cached_bytes -= *cbytes;
        n_hits++;
    } else {
        n_misses++;
        b = aligned_alloc(HM_ALIGN, *cbytes);
    }
    if (b) {
        live_bytes += *cbytes;
        if (live_bytes > peak_live_bytes) peak_live_bytes = live_bytes;
    }
    return b;
}

static void pool_put(void *p, int cls, size_t cbytes) {
    live_bytes -= cbytes;
    if (cached_bytes + cbytes > pool_limit) { free(p); return; }
    hm_block *b = (hm_block *)p;
    b->next = free_lists[cls];
    free_lists[cls] = b;
    cached_bytes += cbytes;
}

/* Bytes of size class cls (the inverse of size_class). */
static size_t class_bytes(int cls) {
    size_t s = (size_t)64 << (cls / 4);
    return s + (s / 4) * (size_t)(cls % 4);
}

/* The capsule's context carries the size class; its pointer is the block. */
static void capsule_release(PyObject *cap) {
    void *p = PyCapsule_GetPointer(cap, "hepml.block");
    int cls = (int)(intptr_t)PyCapsule_GetContext(cap);
    pool_put(p, cls, class_bytes(cls));
}

PyArrayObject *hm_empty(int ndim, const npy_intp *shape, int typenum) {
    if (ndim < 0 || ndim > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "hepml tensors have at most %d dimensions, got %d", HM_MAX_DIMS, ndim);
        return NULL;
    }
    PyArray_Descr *descr = PyArray_DescrFromType(typenum);
    if (!descr) return NULL;
    size_t itemsize = (size_t)PyDataType_ELSIZE(descr);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_ValueError, "negative dimension %zd in a shape", (Py_ssize_t)shape[d]);
            return NULL;
        }
        if (shape[d] != 0 && count > ((size_t)1 << 46) / (size_t)shape[d]) {
            Py_DECREF(descr);
            PyErr_SetString(PyExc_ValueError, "tensor size overflows: more than 2^46 elements requested");
            return NULL;
        }
        count *= (size_t)shape[d];
    }
    size_t bytes = count * itemsize;
    int cls;
    size_t cbytes;
    void *p = pool_get(bytes, &cls, &cbytes);
    if (!p) {
        Py_DECREF(descr);
        PyErr_Format(PyExc_MemoryError, "hepml could not allocate %zu bytes", bytes);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)PyArray_NewFromDescr(&PyArray_Type, descr, ndim, (npy_intp *)shape,
                                                               NULL, p, NPY_ARRAY_CARRAY, NULL);
    if (!arr) { pool_put(p, cls, cbytes); return NULL; }
    PyObject *cap = PyCapsule_New(p, "hepml.block", capsule_release);
    if (!cap || PyCapsule_SetContext(cap, (void *)(intptr_t)cls) != 0) {
        Py_XDECREF(cap);
        Py_DECREF(arr);
        pool_put(p, cls, cbytes);
        return NULL;
    }
    if (PyArray_SetBaseObject(arr, cap) < 0) { Py_DECREF(arr); return NULL; } /* steals cap */
    return arr;
}

PyArrayObject *hm_zeros(int ndim, const npy_intp *shape, int typenum) {
    PyArrayObject *a = hm_empty(ndim, shape, typenum);
    if (a) memset(PyArray_DATA(a), 0, (size_t)PyArray_NBYTES(a));
    return a;
}

PyArrayObject *hm_array_copy(PyArrayObject *a, int typenum) {
    PyArrayObject *out = hm_empty(PyArray_NDIM(a), PyArray_DIMS(a), typenum);
    if (!out) return NULL;
    if (PyArray_CopyInto(out, a) < 0) { Py_DECREF(out); return NULL; }
    return out;
}

/* Scratch blocks carry their class in a 64-byte header. */
void *hm_scratch(size_t bytes) {
    int cls;
    size_t cbytes;
    char *p = pool_get(bytes + HM_ALIGN, &cls, &cbytes);
    if (!p) { PyErr_Format(PyExc_MemoryError, "hepml could not allocate %zu bytes of scratch", bytes); return NULL; }
    *(int *)p = cls;
    *(size_t *)(p + 8) = cbytes;
    return p + HM_ALIGN;
}

void hm_scratch_free(void *q) {
    if (!q) return;
    char *p = (char *)q - HM_ALIGN;
    pool_put(p, *(int *)p, *(size_t *)(p + 8));
}

/* Python: hepml._C._pool_stats() and _pool_clear(), for tests and show_config. */
PyObject *hm_py_pool_stats(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K}", "cached_bytes", (unsigned long long)cached_bytes,
                         "limit_bytes", (unsigned long long)pool_limit, "hits", (unsigned long long)n_hits,
                         "misses", (unsigned long long)n_misses, "live_bytes", (unsigned long long)live_bytes,
                         "peak_live_bytes", (unsigned long long)peak_live_bytes);
}

PyObject *hm_py_pool_clear(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    for (int c = 0; c < HM_POOL_CLASSES; c++) {
        hm_block *b = free_lists[c];
        while (b) { hm_block *n = b->next; free(b); b = n; }
        free_lists[c] = NULL;
    }
    cached_bytes = 0;
    peak_live_bytes = live_bytes;
    Py_RETURN_NONE;
}

PyObject *hm_py_pool_set_limit(PyObject *self, PyObject *arg) {
    (void)self;
    unsigned long long mb = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    pool_limit = (size_t)mb << 20;
    Py_RETURN_NONE;
}
