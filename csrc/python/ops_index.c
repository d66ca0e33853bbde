/*
 * Indexing: t[key] (getitem, with autograd), t[key] = value (setitem),
 * gather, index_select, masked_fill(_), nonzero.
 *
 * A key is turned into a "gather plan" (see shape.h): ints, slices (any step,
 * negative too), None and Ellipsis make a strided view of the source; integer
 * arrays and boolean masks (turned into integer arrays by their nonzero
 * positions) are advanced indices, broadcast together and combined with their
 * strides into one offset per position (boff). The data movement is the
 * index kernels: a gather forward, a scatter-add backward, a scatter for
 * setitem.
 *
 * Semantics follow torch (which follows NumPy for the common cases): integer
 * indices select and drop their dim before advanced indexing is applied, so
 * x[1, :, [0, 1]] has shape (6, 2) for x of shape (5, 6, 7) as in torch
 * (NumPy gives (2, 6)). Advanced indices that sit next to each other keep
 * their place in the result; separated ones move to the front.
 */
#include "hm.h"
#include "shape.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int in_nd;
    npy_intp in_shape[HM_MAX_DIMS];
    int64_t offset;   /* element offset of the view's origin */
    int np, nq;
    int64_t pshape[HM_STRIDED_MAX], pstride[HM_STRIDED_MAX];
    int64_t qshape[HM_STRIDED_MAX], qstride[HM_STRIDED_MAX];
    int64_t nb;
    int64_t *boff;    /* &boff0 or malloc'd */
    int64_t boff0;
    int out_nd;
    npy_intp out_shape[HM_MAX_DIMS];
} gplan;

static void gplan_free(void *p) {
    gplan *g = (gplan *)p;
    if (!g) return;
    if (g->boff && g->boff != &g->boff0) free(g->boff);
    free(g);
}

static gplan *gplan_new(HmTensor *x) {
    gplan *g = calloc(1, sizeof(gplan));
    if (!g) { PyErr_NoMemory(); return NULL; }
    g->in_nd = HM_NDIM(x);
    for (int d = 0; d < g->in_nd; d++) g->in_shape[d] = HM_SHAPE(x)[d];
    g->nb = 1;
    g->boff = &g->boff0;
    return g;
}

static void contiguous_strides(int nd, const npy_intp *shape, int64_t *stride) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) { stride[d] = s; s *= shape[d]; }
}

/* ------------------------------------------------------- index arrays */

/* An integer index argument as a contiguous int64 array (new reference).
 * Tensors must be int64; arrays and lists of integers are converted. */
static PyArrayObject *as_index_array(PyObject *o, const char *opname, const char *argname) {
    if (hm_is_tensor(o)) {
        if (HM_DTYPE(o) != NPY_INT64) {
            PyErr_Format(PyExc_TypeError, "%s(): %s must be an int64 tensor, got dtype %R", opname, argname,
                         (PyObject *)PyArray_DESCR(HM_ARR(o)));
            return NULL;
        }
        Py_INCREF(HM_ARR(o));
        return HM_ARR(o);
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(o, NULL, 0, 0, 0, NULL);
    if (!a) return NULL;
    int t = PyArray_TYPE(a);
    if (!(PyTypeNum_ISINTEGER(t) || PyArray_SIZE(a) == 0) || PyArray_NDIM(a) > HM_MAX_DIMS) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must hold integers, got dtype %R", opname, argname,
                     (PyObject *)PyArray_DESCR(a));
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = hm_array_copy(a, NPY_INT64);
    Py_DECREF(a);
    return c;
}

/* ---------------------------------------------------------- key parsing */

enum { IT_INT, IT_SLICE, IT_NONE, IT_ELL, IT_ARR, IT_MASK };

typedef struct {
    int kind;
    Py_ssize_t i;
    PyObject *slice;      /* borrowed */
    PyArrayObject *arr;   /* owned: int64 (IT_ARR) or bool (IT_MASK) */
} item_t;

static int convert_item(PyObject *o, item_t *it) {
    it->arr = NULL;
    it->slice = NULL;
    if (o == Py_None) { it->kind = IT_NONE; return 0; }
    if (o == Py_Ellipsis) { it->kind = IT_ELL; return 0; }
    if (PySlice_Check(o)) { it->kind = IT_SLICE; it->slice = o; return 0; }
    if (PyBool_Check(o) || PyArray_IsScalar(o, Bool)) {
        PyErr_SetString(PyExc_IndexError, "indexing with a boolean scalar (x[True]) is not supported by hepml; "
                        "use unsqueeze(0) or a boolean mask tensor");
        return -1;
    }
    PyArrayObject *a = NULL;
    if (hm_is_tensor(o)) {
        a = HM_ARR(o);
        Py_INCREF(a);
        if (PyArray_TYPE(a) == NPY_FLOAT32) {
            Py_DECREF(a);
            PyErr_SetString(PyExc_IndexError, "tensors used as indices must be int64 or bool, got a float32 tensor "
                            "(convert with .long())");
            return -1;
        }
    } else if (PyLong_Check(o) || (!PyArray_Check(o) && PyIndex_Check(o))) {
        Py_ssize_t v = PyNumber_AsSsize_t(o, PyExc_IndexError);
        if (v == -1 && PyErr_Occurred()) return -1;
        it->kind = IT_INT;
        it->i = v;
        return 0;
    } else if (PyArray_Check(o) || PyList_Check(o) || PyTuple_Check(o)) {
        a = (PyArrayObject *)PyArray_FromAny(o, NULL, 0, 0, 0, NULL);
        if (!a) return -1;
    } else {
        PyErr_Format(PyExc_TypeError, "only integers, slices (:), None, Ellipsis (...), and int64 or bool tensors/"
                     "arrays are valid indices, got %s", Py_TYPE(o)->tp_name);
        return -1;
    }
    int t = PyArray_TYPE(a);
    if (t == NPY_BOOL) {
        if (PyArray_NDIM(a) == 0) {
            Py_DECREF(a);
            PyErr_SetString(PyExc_IndexError, "indexing with a 0-d boolean mask is not supported by hepml");
            return -1;
        }
        it->kind = IT_MASK;
        PyArrayObject *c = hm_array_copy(a, NPY_BOOL);
        Py_DECREF(a);
        if (!c) return -1;
        it->arr = c;
        return 0;
    }
    if (!PyTypeNum_ISINTEGER(t) && PyArray_SIZE(a) != 0) {
        PyErr_Format(PyExc_IndexError, "arrays used as indices must be of integer or boolean type, got dtype %R",
                     (PyObject *)PyArray_DESCR(a));
        Py_DECREF(a);
        return -1;
    }
    PyArrayObject *c = hm_array_copy(a, NPY_INT64);
    Py_DECREF(a);
    if (!c) return -1;
    if (PyArray_NDIM(c) == 0) {
        /* a 0-d integer array/tensor indexes like an int */
        it->kind = IT_INT;
        it->i = (Py_ssize_t)((int64_t *)PyArray_DATA(c))[0];
        Py_DECREF(c);
        return 0;
    }
    if (PyArray_NDIM(c) > HM_MAX_DIMS) {
        Py_DECREF(c);
        PyErr_Format(PyExc_IndexError, "index arrays may have at most %d dimensions", HM_MAX_DIMS);
        return -1;
    }
    it->kind = IT_ARR;
    it->arr = c;
    return 0;
}

#define MAX_ITEMS 32
#define MAX_ADV HM_MAX_DIMS

/* Build the gather plan of x[key]. */
static gplan *build_plan(HmTensor *x, PyObject *key) {
    item_t items[MAX_ITEMS];
    int nitems = 0;
    gplan *g = NULL;
    PyArrayObject *adv[MAX_ADV];  /* owned int64 index arrays */
    int adv_vdim[MAX_ADV], adv_sdim[MAX_ADV], nadv = 0;
    int64_t *boff = NULL;
    char b1[160], b2[160];

    /* 1. the items of the key */
    if (PyTuple_Check(key)) {
        Py_ssize_t n = PyTuple_GET_SIZE(key);
        if (n > MAX_ITEMS) {
            PyErr_Format(PyExc_IndexError, "too many indices (%zd)", n);
            return NULL;
        }
        for (Py_ssize_t k = 0; k < n; k++) {
            if (convert_item(PyTuple_GET_ITEM(key, k), &items[nitems]) < 0) goto fail;
            nitems++;
        }
    } else {
        if (convert_item(key, &items[0]) < 0) return NULL;
        nitems = 1;
    }

    /* 2. how many source dims the items consume */
    int nd = HM_NDIM(x), consumed = 0, n_ell = 0;
    for (int k = 0; k < nitems; k++) {
        switch (items[k].kind) {
        case IT_INT: case IT_SLICE: case IT_ARR: consumed++; break;
        case IT_MASK: consumed += PyArray_NDIM(items[k].arr); break;
        case IT_ELL: n_ell++; break;
        default: break;
        }
    }
    if (n_ell > 1) {
        PyErr_SetString(PyExc_IndexError, "an index can only have a single ellipsis ('...')");
        goto fail;
    }
    if (consumed > nd) {
        PyErr_Format(PyExc_IndexError, "too many indices for tensor of dimension %d (shape %s): the index uses %d",
                     nd, hm_shape_str(nd, HM_SHAPE(x), b1, sizeof b1), consumed);
        goto fail;
    }

    /* 3. walk the items, building the strided view */
    g = gplan_new(x);
    if (!g) goto fail;
    int64_t sst[HM_MAX_DIMS];
    contiguous_strides(nd, HM_SHAPE(x), sst);
    int nv = 0, sd = 0;
    int64_t vshape[HM_STRIDED_MAX], vstride[HM_STRIDED_MAX];
    int vadv[HM_STRIDED_MAX];
#define PUSH_VIEW(SIZE, STRIDE, ADV)                                                                     \
    do {                                                                                                 \
        if (nv >= HM_STRIDED_MAX) {                                                                      \
            PyErr_Format(PyExc_IndexError, "index makes too many dimensions (at most %d)", HM_MAX_DIMS); \
            goto fail;                                                                                   \
        }                                                                                                \
        vshape[nv] = (SIZE); vstride[nv] = (STRIDE); vadv[nv] = (ADV); nv++;                             \
    } while (0)
    for (int k = 0; k < nitems; k++) {
        item_t *it = &items[k];
        if (it->kind == IT_INT) {
            Py_ssize_t size = HM_SHAPE(x)[sd], i = it->i;
            if (i < -size || i >= size) {
                PyErr_Format(PyExc_IndexError, "index %zd is out of bounds for dimension %d with size %zd", i, sd,
                             size);
                goto fail;
            }
            if (i < 0) i += size;
            g->offset += i * sst[sd];
            sd++;
        } else if (it->kind == IT_SLICE) {
            Py_ssize_t start, stop, step;
            if (PySlice_Unpack(it->slice, &start, &stop, &step) < 0) goto fail;
            Py_ssize_t len = PySlice_AdjustIndices(HM_SHAPE(x)[sd], &start, &stop, step);
            if (len > 0) g->offset += start * sst[sd];
            PUSH_VIEW(len, sst[sd] * step, -1);
            sd++;
        } else if (it->kind == IT_NONE) {
            PUSH_VIEW(1, 0, -1);
        } else if (it->kind == IT_ELL) {
            for (int e = 0; e < nd - consumed; e++, sd++) PUSH_VIEW(HM_SHAPE(x)[sd], sst[sd], -1);
        } else if (it->kind == IT_ARR) {
            if (nadv >= MAX_ADV) { PyErr_SetString(PyExc_IndexError, "too many index arrays"); goto fail; }
            adv[nadv] = it->arr;
            it->arr = NULL;
            adv_vdim[nadv] = nv;
            adv_sdim[nadv] = sd;
            PUSH_VIEW(HM_SHAPE(x)[sd], sst[sd], nadv);
            nadv++;
            sd++;
        } else { /* IT_MASK: its nonzero positions index its dims */
            PyArrayObject *m = it->arr;
            int mnd = PyArray_NDIM(m);
            for (int q = 0; q < mnd; q++) {
                if (PyArray_DIM(m, q) != HM_SHAPE(x)[sd + q]) {
                    PyErr_Format(PyExc_IndexError, "the shape of the mask %s at index %d does not match the shape "
                                 "of the indexed tensor %s at index %d (dimension %d has size %zd, the mask %zd)",
                                 hm_shape_str(mnd, PyArray_DIMS(m), b1, sizeof b1), q,
                                 hm_shape_str(nd, HM_SHAPE(x), b2, sizeof b2), sd + q, sd + q,
                                 (Py_ssize_t)HM_SHAPE(x)[sd + q], (Py_ssize_t)PyArray_DIM(m, q));
                    goto fail;
                }
            }
            if (nadv + mnd > MAX_ADV) { PyErr_SetString(PyExc_IndexError, "too many index arrays"); goto fail; }
            int64_t mshape[HM_STRIDED_MAX];
            for (int q = 0; q < mnd; q++) mshape[q] = PyArray_DIM(m, q);
            npy_intp cnt = (npy_intp)hm_count_true((const uint8_t *)PyArray_DATA(m), PyArray_SIZE(m));
            int64_t *cols[HM_MAX_DIMS];
            for (int q = 0; q < mnd; q++) {
                PyArrayObject *c = hm_empty(1, &cnt, NPY_INT64);
                if (!c) goto fail;
                adv[nadv] = c;
                adv_vdim[nadv] = nv;
                adv_sdim[nadv] = sd;
                cols[q] = (int64_t *)PyArray_DATA(c);
                PUSH_VIEW(HM_SHAPE(x)[sd], sst[sd], nadv);
                nadv++;
                sd++;
            }
            hm_nonzero(cols, (const uint8_t *)PyArray_DATA(m), mnd, mshape);
        }
    }
    for (; sd < nd; sd++) PUSH_VIEW(HM_SHAPE(x)[sd], sst[sd], -1);
#undef PUSH_VIEW

    /* 4. advanced indices: broadcast, bounds-check, combine into offsets */
    int bnd = 0;
    npy_intp bshape[HM_MAX_DIMS];
    if (nadv > 0) {
        for (int j = 0; j < nadv; j++) {
            int an = PyArray_NDIM(adv[j]);
            if (an > bnd) {
                for (int q = bnd - 1; q >= 0; q--) bshape[q + an - bnd] = bshape[q];
                for (int q = 0; q < an - bnd; q++) bshape[q] = 1;
                bnd = an;
            }
            for (int q = 0; q < an; q++) {
                npy_intp s = PyArray_DIM(adv[j], q), *b = &bshape[q + bnd - an];
                if (s == *b || s == 1) continue;
                if (*b == 1) { *b = s; continue; }
                /* name every shape involved, as NumPy does */
                char msg[600];
                size_t used = (size_t)snprintf(msg, sizeof msg,
                                               "shape mismatch: indexing arrays could not be broadcast together with "
                                               "shapes");
                for (int jj = 0; jj < nadv && used < sizeof msg; jj++)
                    used += (size_t)snprintf(msg + used, sizeof msg - used, " %s",
                                             hm_shape_str(PyArray_NDIM(adv[jj]), PyArray_DIMS(adv[jj]), b1, sizeof b1));
                PyErr_SetString(PyExc_IndexError, msg);
                goto fail;
            }
        }
        int64_t nb = 1;
        for (int q = 0; q < bnd; q++) nb *= bshape[q];
        boff = malloc(sizeof(int64_t) * (size_t)(nb > 0 ? nb : 1));
        if (!boff) { PyErr_NoMemory(); goto fail; }
        for (int64_t b = 0; b < nb; b++) boff[b] = 0;
        for (int j = 0; j < nadv; j++) {
            /* broadcast strides of this array over bshape */
            int an = PyArray_NDIM(adv[j]);
            int64_t ast[HM_MAX_DIMS], acs[HM_MAX_DIMS];
            npy_intp ashape[HM_MAX_DIMS];
            for (int q = 0; q < an; q++) ashape[q] = PyArray_DIM(adv[j], q);
            contiguous_strides(an, ashape, acs);
            for (int q = 0; q < bnd; q++) {
                int aq = q - (bnd - an);
                ast[q] = (aq >= 0 && ashape[aq] != 1) ? acs[aq] : 0;
            }
            const int64_t *iv = (const int64_t *)PyArray_DATA(adv[j]);
            int64_t size = vshape[adv_vdim[j]], vs = vstride[adv_vdim[j]];
            int64_t idx[HM_MAX_DIMS] = {0}, off = 0;
            for (int64_t b = 0; b < nb; b++) {
                int64_t v = iv[off];
                if (v < -size || v >= size) {
                    PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for dimension %d with size %lld",
                                 (long long)v, adv_sdim[j], (long long)size);
                    goto fail;
                }
                boff[b] += (v < 0 ? v + size : v) * vs;
                for (int q = bnd - 1; q >= 0; q--) {
                    off += ast[q];
                    if (++idx[q] < bshape[q]) break;
                    off -= ast[q] * idx[q];
                    idx[q] = 0;
                }
            }
        }
        g->nb = nb;
        g->boff = boff;
        boff = NULL;
    }

    /* 5. result layout: [P, B, Q] */
    int first = -1, last = -1;
    for (int v = 0; v < nv; v++)
        if (vadv[v] >= 0) { if (first < 0) first = v; last = v; }
    int adjacent = nadv == 0 || last - first + 1 == nadv;
    int on = 0;
    if (nadv > 0 && adjacent) {
        for (int v = 0; v < first; v++) { g->pshape[g->np] = vshape[v]; g->pstride[g->np++] = vstride[v]; }
        for (int v = last + 1; v < nv; v++) { g->qshape[g->nq] = vshape[v]; g->qstride[g->nq++] = vstride[v]; }
    } else {
        for (int v = 0; v < nv; v++)
            if (vadv[v] < 0) { g->qshape[g->nq] = vshape[v]; g->qstride[g->nq++] = vstride[v]; }
    }
    if (g->np + bnd + g->nq > HM_MAX_DIMS) {
        PyErr_Format(PyExc_IndexError, "the result of this index would have %d dimensions, at most %d are supported",
                     g->np + bnd + g->nq, HM_MAX_DIMS);
        goto fail;
    }
    for (int q = 0; q < g->np; q++) g->out_shape[on++] = g->pshape[q];
    for (int q = 0; q < bnd; q++) g->out_shape[on++] = bshape[q];
    for (int q = 0; q < g->nq; q++) g->out_shape[on++] = g->qshape[q];
    g->out_nd = on;

    for (int j = 0; j < nadv; j++) Py_DECREF(adv[j]);
    for (int k = 0; k < nitems; k++) Py_XDECREF(items[k].arr);
    return g;
fail:
    for (int j = 0; j < nadv; j++) Py_DECREF(adv[j]);
    for (int k = 0; k < nitems; k++) Py_XDECREF(items[k].arr);
    free(boff);
    gplan_free(g);
    return NULL;
}

/* ------------------------------------------------------------- getitem */

static int index_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    gplan *p = (gplan *)n->ctx;
    PyArrayObject *dx = hm_zeros(p->in_nd, p->in_shape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_index_scatter_add_f32(AF32(dx) + p->offset, AF32(g), p->np, p->pshape, p->pstride, p->nb, p->boff, p->nq,
                             p->qshape, p->qstride);
    gin[0] = dx;
    return 0;
}

/* Run a gather plan (takes ownership of p). */
static PyObject *run_gather(HmTensor *x, gplan *p, const char *nodename) {
    PyArrayObject *out = hm_empty(p->out_nd, p->out_shape, HM_DTYPE(x));
    if (!out) { gplan_free(p); return NULL; }
    int64_t es = PyArray_ITEMSIZE(x->arr);
    hm_index_gather(PyArray_DATA(out), (char *)PyArray_DATA(x->arr) + p->offset * es, es, p->np, p->pshape,
                    p->pstride, p->nb, p->boff, p->nq, p->qshape, p->qstride);
    PyObject *in[1] = {(PyObject *)x};
    HmNode *node = hm_node_new(nodename, index_backward, in, 1);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); gplan_free(p); return NULL; }
    if (node) {
        node->ctx = p;
        node->ctx_free = gplan_free;
    } else {
        gplan_free(p);
    }
    return hm_wrap_with_node(out, (PyObject *)node);
}

/* index(input, key): input[key] */
static PyObject *py_index(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *key;
    if (!PyArg_ParseTuple(args, "OO:index", &xo, &key)) return NULL;
    if (!hm_is_tensor(xo)) {
        PyErr_SetString(PyExc_TypeError, "index(): input must be a tensor");
        return NULL;
    }
    HmTensor *x = (HmTensor *)xo;
    gplan *p = build_plan(x, key);
    if (!p) return NULL;
    return run_gather(x, p, "IndexBackward");
}

/* ------------------------------------------------------------- setitem */

/* value as a contiguous array of x's dtype, broadcast to the plan's result
 * shape (new reference). */
static PyArrayObject *broadcast_value(PyObject *vo, int typenum, const gplan *p) {
    PyArrayObject *v;
    if (hm_is_tensor(vo)) {
        v = hm_array_copy(HM_ARR(vo), typenum);
    } else {
        PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(vo, NULL, 0, 0, 0, NULL);
        if (!a) return NULL;
        if (!(PyTypeNum_ISNUMBER(PyArray_TYPE(a)) || PyArray_TYPE(a) == NPY_BOOL) ||
            PyTypeNum_ISCOMPLEX(PyArray_TYPE(a))) {
            PyErr_Format(PyExc_TypeError, "__setitem__(): the value must be a number, a tensor or an array of "
                         "numbers, got dtype %R", (PyObject *)PyArray_DESCR(a));
            Py_DECREF(a);
            return NULL;
        }
        v = hm_array_copy(a, typenum);
        Py_DECREF(a);
    }
    if (!v) return NULL;
    /* leading size-1 dims beyond the result's rank are allowed (NumPy) */
    int vn = PyArray_NDIM(v), lead = 0;
    while (vn - lead > p->out_nd && PyArray_DIM(v, lead) == 1) lead++;
    int ok = vn - lead <= p->out_nd;
    int64_t shape[HM_MAX_DIMS], st[HM_MAX_DIMS], vst[HM_MAX_DIMS];
    npy_intp vshape[HM_MAX_DIMS];
    for (int q = lead; q < vn; q++) vshape[q - lead] = PyArray_DIM(v, q);
    contiguous_strides(vn - lead, vshape, vst);
    for (int q = 0; ok && q < p->out_nd; q++) {
        int vq = q - (p->out_nd - (vn - lead));
        shape[q] = p->out_shape[q];
        if (vq < 0) { st[q] = 0; continue; }
        if (vshape[vq] == p->out_shape[q]) st[q] = vst[vq];
        else if (vshape[vq] == 1) st[q] = 0;
        else ok = 0;
    }
    if (!ok) {
        char b1[160], b2[160];
        PyErr_Format(PyExc_ValueError, "__setitem__(): a value of shape %s cannot be broadcast to the indexed "
                     "shape %s", hm_shape_str(vn, PyArray_DIMS(v), b1, sizeof b1),
                     hm_shape_str(p->out_nd, p->out_shape, b2, sizeof b2));
        Py_DECREF(v);
        return NULL;
    }
    PyArrayObject *out = hm_empty(p->out_nd, p->out_shape, typenum);
    if (!out) { Py_DECREF(v); return NULL; }
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(v), PyArray_ITEMSIZE(v), p->out_nd, shape, st);
    Py_DECREF(v);
    return out;
}

/* index_put_(input, key, value): input[key] = value, in place. */
static PyObject *py_index_put_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *key, *vo;
    if (!PyArg_ParseTuple(args, "OOO:index_put_", &xo, &key, &vo)) return NULL;
    if (!hm_is_tensor(xo)) {
        PyErr_SetString(PyExc_TypeError, "__setitem__(): target must be a tensor");
        return NULL;
    }
    HmTensor *x = (HmTensor *)xo;
    if (hm_check_inplace(x, "__setitem__") < 0) return NULL;
    if (hm_is_tensor(vo) && ((HmTensor *)vo)->requires_grad && hm_grad_enabled()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "__setitem__(): the value requires grad, but hepml does not record in-place assignment in "
                        "the graph; build the tensor out of place (cat, stack, masked_fill) or assign value.detach()");
        return NULL;
    }
    gplan *p = build_plan(x, key);
    if (!p) return NULL;
    PyArrayObject *v = broadcast_value(vo, HM_DTYPE(x), p);
    if (!v) { gplan_free(p); return NULL; }
    int64_t es = PyArray_ITEMSIZE(x->arr);
    hm_index_scatter((char *)PyArray_DATA(x->arr) + p->offset * es, PyArray_DATA(v), es, p->np, p->pshape, p->pstride,
                     p->nb, p->boff, p->nq, p->qshape, p->qstride);
    Py_DECREF(v);
    gplan_free(p);
    x->version++;
    Py_RETURN_NONE;
}

/* --------------------------------------------------------- index_select */

/* index_select(input, dim, index): index a 1-d int64 (0-d allowed). */
static PyObject *py_index_select(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "dim", "index", NULL};
    PyObject *xo, *dobj, *io;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:index_select", kwlist, &xo, &dobj, &io)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "index_select", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    PyArrayObject *ix = NULL;
    gplan *p = NULL;
    int d, nd = HM_NDIM(x);
    if (hm_parse_dim(dobj, nd, "index_select", &d) < 0) goto done;
    ix = as_index_array(io, "index_select", "index");
    if (!ix) goto done;
    if (PyArray_NDIM(ix) > 1) {
        char b[160];
        PyErr_Format(PyExc_ValueError, "index_select(): index must be 1-d, got shape %s",
                     hm_shape_str(PyArray_NDIM(ix), PyArray_DIMS(ix), b, sizeof b));
        goto done;
    }
    int64_t size = nd ? HM_SHAPE(x)[d] : 1, n = PyArray_SIZE(ix);
    const int64_t *iv = (const int64_t *)PyArray_DATA(ix);
    int64_t bad = hm_index_find_out_of_range(iv, n, size, 0);
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError, "index_select(): index %lld is out of range for dimension %d with size %lld",
                     (long long)iv[bad], d, (long long)size);
        goto done;
    }
    p = gplan_new(x);
    if (!p) goto done;
    int64_t st[HM_MAX_DIMS];
    contiguous_strides(nd, HM_SHAPE(x), st);
    for (int q = 0; q < nd; q++) {
        if (q < d) { p->pshape[p->np] = HM_SHAPE(x)[q]; p->pstride[p->np++] = st[q]; }
        if (q > d) { p->qshape[p->nq] = HM_SHAPE(x)[q]; p->qstride[p->nq++] = st[q]; }
    }
    p->nb = n;
    p->boff = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!p->boff) { PyErr_NoMemory(); goto done; }
    int64_t ds = nd ? st[d] : 0;
    for (int64_t k = 0; k < n; k++) p->boff[k] = iv[k] * ds;
    p->out_nd = nd ? nd : PyArray_NDIM(ix);
    for (int q = 0; q < nd; q++) p->out_shape[q] = q == d ? n : HM_SHAPE(x)[q];
    if (!nd && p->out_nd) p->out_shape[0] = n;
    result = run_gather(x, p, "IndexSelectBackward");
    p = NULL;
done:
    gplan_free(p);
    Py_XDECREF(ix);
    Py_DECREF(x);
    return result;
}

/* ---------------------------------------------------------------- gather */

static int gather_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *ix = hm_node_saved(n, 0);
    if (!ix) return -1;
    int nd = (int)n->i[0], dim = (int)n->i[1];
    npy_intp xshape[HM_MAX_DIMS];
    int64_t st[HM_MAX_DIMS], ishape[HM_MAX_DIMS];
    for (int d = 0; d < nd; d++) xshape[d] = (npy_intp)n->i[2 + d];
    contiguous_strides(nd, xshape, st);
    for (int d = 0; d < PyArray_NDIM(ix); d++) ishape[d] = PyArray_DIM(ix, d);
    PyArrayObject *dx = hm_zeros(nd, xshape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_gather_dim_backward(AF32(dx), AF32(g), (const int64_t *)PyArray_DATA(ix), PyArray_NDIM(ix), ishape, st, dim);
    gin[0] = dx;
    return 0;
}

/* gather(input, dim, index): out[i][j] = input[index[i][j]][j] (dim 0), as torch. */
static PyObject *py_gather(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "dim", "index", NULL};
    PyObject *xo, *dobj, *io;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:gather", kwlist, &xo, &dobj, &io)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "gather", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    PyArrayObject *ix = NULL;
    char b1[160], b2[160];
    int d, nd = HM_NDIM(x);
    if (hm_parse_dim(dobj, nd, "gather", &d) < 0) goto done;
    ix = as_index_array(io, "gather", "index");
    if (!ix) goto done;
    int ok = PyArray_NDIM(ix) == nd;
    for (int q = 0; ok && q < nd; q++) ok = q == d || PyArray_DIM(ix, q) <= HM_SHAPE(x)[q];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "gather(): index has shape %s but needs %d dims, each no larger than the "
                     "input's shape %s except in dim %d", hm_shape_str(PyArray_NDIM(ix), PyArray_DIMS(ix), b1,
                     sizeof b1), nd, hm_shape_str(nd, HM_SHAPE(x), b2, sizeof b2), d);
        goto done;
    }
    int64_t size = nd ? HM_SHAPE(x)[d] : 1;
    const int64_t *iv = (const int64_t *)PyArray_DATA(ix);
    int64_t bad = hm_index_find_out_of_range(iv, PyArray_SIZE(ix), size, 0);
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError, "gather(): index %lld is out of bounds for dimension %d with size %lld",
                     (long long)iv[bad], d, (long long)size);
        goto done;
    }
    int64_t st[HM_MAX_DIMS], ishape[HM_MAX_DIMS];
    contiguous_strides(nd, HM_SHAPE(x), st);
    if (!nd) st[0] = 0;
    for (int q = 0; q < nd; q++) ishape[q] = PyArray_DIM(ix, q);
    PyArrayObject *out = hm_empty(PyArray_NDIM(ix), PyArray_DIMS(ix), HM_DTYPE(x));
    if (!out) goto done;
    hm_gather_dim(PyArray_DATA(out), PyArray_DATA(x->arr), PyArray_ITEMSIZE(x->arr), iv, nd, ishape, st, d);
    PyObject *in[1] = {(PyObject *)x};
    HmNode *node = hm_node_new("GatherBackward", gather_backward, in, 1);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = nd;
        node->i[1] = d;
        for (int q = 0; q < nd; q++) node->i[2 + q] = HM_SHAPE(x)[q];
        /* a tensor index is version-checked; a converted array is private */
        if (hm_node_save(node, hm_is_tensor(io) ? io : (PyObject *)ix) < 0) {
            Py_DECREF(node);
            Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_XDECREF(ix);
    Py_DECREF(x);
    return result;
}

/* ----------------------------------------------------------- masked_fill */

/* Mask broadcast strides over x's shape; error unless mask broadcasts to it. */
static int mask_strides(HmTensor *x, PyArrayObject *m, int64_t *shape, int64_t *mst, const char *opname) {
    int nd = HM_NDIM(x), mn = PyArray_NDIM(m);
    int64_t cs[HM_MAX_DIMS];
    contiguous_strides(mn, PyArray_DIMS(m), cs);
    int ok = mn <= nd;
    for (int d = 0; ok && d < nd; d++) {
        int q = d - (nd - mn);
        shape[d] = HM_SHAPE(x)[d];
        if (q < 0) { mst[d] = 0; continue; }
        if (PyArray_DIM(m, q) == HM_SHAPE(x)[d]) mst[d] = cs[q];
        else if (PyArray_DIM(m, q) == 1) mst[d] = 0;
        else ok = 0;
    }
    if (!ok) {
        char b1[160], b2[160];
        PyErr_Format(PyExc_ValueError, "%s(): mask of shape %s cannot be broadcast to the input's shape %s", opname,
                     hm_shape_str(mn, PyArray_DIMS(m), b1, sizeof b1), hm_shape_str(nd, HM_SHAPE(x), b2, sizeof b2));
        return -1;
    }
    return 0;
}

static PyArrayObject *as_mask(PyObject *mo, const char *opname) {
    PyArrayObject *m = NULL;
    if (hm_is_tensor(mo)) { m = HM_ARR(mo); Py_INCREF(m); }
    else if (!(m = (PyArrayObject *)PyArray_FromAny(mo, NULL, 0, 0, 0, NULL))) return NULL;
    if (PyArray_TYPE(m) != NPY_BOOL) {
        PyErr_Format(PyExc_TypeError, "%s(): mask must be a bool tensor, got dtype %R", opname,
                     (PyObject *)PyArray_DESCR(m));
        Py_DECREF(m);
        return NULL;
    }
    PyArrayObject *c = hm_is_tensor(mo) ? (Py_INCREF(m), m) : hm_array_copy(m, NPY_BOOL);
    Py_DECREF(m);
    return c;
}

static int fill_value(PyObject *vo, const char *opname, float *v) {
    if (hm_is_tensor(vo)) {
        if (HM_NUMEL(vo) != 1 || HM_NDIM(vo) != 0) {
            PyErr_Format(PyExc_ValueError, "%s(): value must be a number or a 0-d tensor", opname);
            return -1;
        }
        PyObject *f = PyNumber_Float(vo);
        if (!f) return -1;
        *v = (float)PyFloat_AsDouble(f);
        Py_DECREF(f);
        return 0;
    }
    double d = PyFloat_AsDouble(vo);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): value must be a number, got %s", opname, Py_TYPE(vo)->tp_name);
        return -1;
    }
    *v = (float)d;
    return 0;
}

static int masked_fill_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *m = hm_node_saved(n, 0);
    if (!m) return -1;
    int nd = PyArray_NDIM(g), mn = PyArray_NDIM(m);
    int64_t shape[HM_MAX_DIMS], mst[HM_MAX_DIMS], cs[HM_MAX_DIMS];
    contiguous_strides(mn, PyArray_DIMS(m), cs);
    for (int d = 0; d < nd; d++) {
        int q = d - (nd - mn);
        shape[d] = PyArray_DIM(g, d);
        mst[d] = (q >= 0 && PyArray_DIM(m, q) != 1) ? cs[q] : 0;
    }
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    hm_masked_fill_backward(AF32(dx), AF32(g), (const uint8_t *)PyArray_DATA(m), nd, shape, mst);
    gin[0] = dx;
    return 0;
}

/* masked_fill(input, mask, value): value where mask is True (mask broadcasts
 * to the input's shape); the gradient is zero there. The value is a number
 * (a 0-d tensor is read as a number: no gradient flows to it). */
static PyObject *masked_fill_impl(PyObject *args, int inplace) {
    const char *name = inplace ? "masked_fill_" : "masked_fill";
    PyObject *xo, *mo, *vo;
    if (!PyArg_ParseTuple(args, inplace ? "OOO:masked_fill_" : "OOO:masked_fill", &xo, &mo, &vo)) return NULL;
    float value;
    if (fill_value(vo, name, &value) < 0) return NULL;
    HmTensor *x = inplace ? (hm_is_tensor(xo) ? (Py_INCREF(xo), (HmTensor *)xo) : NULL)
                          : hm_as_float_tensor(xo, name, "input");
    if (!x) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s(): input must be a tensor", name);
        return NULL;
    }
    PyObject *result = NULL;
    PyArrayObject *m = as_mask(mo, name);
    if (!m) goto done;
    int64_t shape[HM_MAX_DIMS], mst[HM_MAX_DIMS];
    if (mask_strides(x, m, shape, mst, name) < 0) goto done;
    if (inplace) {
        if (hm_check_inplace(x, name) < 0 || hm_require_float(x, name, "input") < 0) goto done;
        hm_masked_fill_forward(HM_F32(x), HM_F32(x), (const uint8_t *)PyArray_DATA(m), HM_NDIM(x), shape, mst, value);
        x->version++;
        Py_INCREF(x);
        result = (PyObject *)x;
        goto done;
    }
    PyArrayObject *out = hm_empty_like(x->arr);
    if (!out) goto done;
    hm_masked_fill_forward(AF32(out), HM_F32(x), (const uint8_t *)PyArray_DATA(m), HM_NDIM(x), shape, mst, value);
    PyObject *in[1] = {(PyObject *)x};
    HmNode *node = hm_node_new("MaskedFillBackward", masked_fill_backward, in, 1);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node && hm_node_save(node, hm_is_tensor(mo) ? mo : (PyObject *)m) < 0) {
        Py_DECREF(node);
        Py_DECREF(out);
        goto done;
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_XDECREF(m);
    Py_DECREF(x);
    return result;
}

static PyObject *py_masked_fill(PyObject *s, PyObject *a) { (void)s; return masked_fill_impl(a, 0); }
static PyObject *py_masked_fill_(PyObject *s, PyObject *a) { (void)s; return masked_fill_impl(a, 1); }

/* --------------------------------------------------------------- nonzero */

/* nonzero(input): int64 [n, ndim] positions of the non-zero entries. */
static PyObject *py_nonzero(PyObject *self, PyObject *arg) {
    (void)self;
    HmTensor *x = hm_as_tensor(arg, "nonzero", "input");
    if (!x) return NULL;
    PyArrayObject *m = hm_array_copy(x->arr, NPY_BOOL);
    Py_DECREF(x);
    if (!m) return NULL;
    int nd = PyArray_NDIM(m);
    npy_intp cnt = (npy_intp)hm_count_true((const uint8_t *)PyArray_DATA(m), PyArray_SIZE(m));
    npy_intp oshape[2] = {cnt, nd};
    PyArrayObject *cols = hm_empty(2, (npy_intp[]){nd ? nd : 1, cnt}, NPY_INT64);
    PyArrayObject *out = cols ? hm_empty(2, oshape, NPY_INT64) : NULL;
    if (!out) { Py_XDECREF(cols); Py_DECREF(m); return NULL; }
    int64_t *cp[HM_MAX_DIMS], shape[HM_MAX_DIMS];
    for (int d = 0; d < nd; d++) { cp[d] = (int64_t *)PyArray_DATA(cols) + d * cnt; shape[d] = PyArray_DIM(m, d); }
    hm_nonzero(cp, (const uint8_t *)PyArray_DATA(m), nd, shape);
    /* [ndim, n] -> [n, ndim] */
    int64_t tshape[2] = {cnt, nd}, tst[2] = {1, cnt};
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(cols), 8, 2, tshape, tst);
    Py_DECREF(cols);
    Py_DECREF(m);
    return hm_wrap(out);
}

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef hm_methods_index[] = {
    {"index", py_index, METH_VARARGS, "index(input, key): input[key] with ints, slices, None, ..., int/bool arrays."},
    {"index_put_", py_index_put_, METH_VARARGS, "index_put_(input, key, value): input[key] = value, in place."},
    {"index_select", KW(py_index_select), "index_select(input, dim, index): entries at index along dim."},
    {"gather", KW(py_gather), "gather(input, dim, index): values along dim at index positions (torch.gather)."},
    {"masked_fill", py_masked_fill, METH_VARARGS, "masked_fill(input, mask, value): value where mask is True."},
    {"masked_fill_", py_masked_fill_, METH_VARARGS, "masked_fill_(input, mask, value): in place."},
    {"nonzero", py_nonzero, METH_O, "nonzero(input): int64 [n, ndim] positions of non-zero entries."},
    {NULL, NULL, 0, NULL},
};
