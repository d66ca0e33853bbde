/*
 * Sorting and order statistics: sort, argsort, quantile, nanquantile, median,
 * nanmedian (torch semantics; the kernels are in csrc/kernels/sort.c).
 *
 * Every op views its input as [outer, n, inner] around the sorted/reduced dim
 * (dim=None: the flattened input, outer = inner = 1); the kernels read the rows
 * with stride `inner`, so no permuted copy is made here.
 */
#include "hm.h"
#include "sort.h"
#include <math.h>
#include <string.h>

typedef struct {
    int64_t outer, n, inner;
} layout;

static layout layout_of(HmTensor *x, int dim /* -1: flattened */) {
    layout l = {1, 1, 1};
    int nd = HM_NDIM(x);
    const npy_intp *s = HM_SHAPE(x);
    if (dim < 0 || nd == 0) { l.n = HM_NUMEL(x); return l; }
    for (int d = 0; d < nd; d++) {
        if (d < dim) l.outer *= s[d];
        else if (d == dim) l.n = s[d];
        else l.inner *= s[d];
    }
    return l;
}

static int check_row_length(const layout *l, const char *opname) {
    if (l->n <= INT32_MAX) return 0;
    PyErr_Format(PyExc_ValueError, "%s(): the dim to sort has %lld elements; at most %d are supported", opname,
                 (long long)l->n, INT32_MAX);
    return -1;
}

/* Scratch for the kernels' sort buffers; *slots receives the concurrency. */
static void *sort_scratch(const layout *l, int *slots) {
    *slots = hm_sort_slots(l->outer * l->inner, l->n);
    return hm_scratch(hm_sort_scratch_bytes(l->n, *slots));
}

/* sort's node: i[0..2] = outer, n, inner; saved[0] = the indices array. */
static int sort_backward(HmNode *nd, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *idx = hm_node_saved(nd, 0);
    if (!idx) return -1;
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    hm_sort_backward(AF32(dx), AF32(g), (const int64_t *)PyArray_DATA(idx), nd->i[0], nd->i[1], nd->i[2]);
    gin[0] = dx;
    return 0;
}

/* sort / argsort: (input, dim=-1, descending=False, stable=False). The radix
 * sort is stable either way, so `stable` only documents intent. */
static PyObject *sort_impl(PyObject *args, PyObject *kw, int want_values) {
    const char *name = want_values ? "sort" : "argsort";
    static char *kwlist[] = {"input", "dim", "descending", "stable", NULL};
    PyObject *xo, *dimo = NULL;
    int descending = 0, stable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, want_values ? "O|Opp:sort" : "O|Opp:argsort", kwlist, &xo, &dimo,
                                     &descending, &stable))
        return NULL;
    (void)stable;
    HmTensor *x = hm_as_tensor(xo, name, "input");   /* tensors as they are (int64 stays int64) */
    if (!x) return NULL;
    PyObject *result = NULL;
    PyArrayObject *vals = NULL, *idx = NULL;
    int is_int = HM_DTYPE(x) == NPY_INT64;
    if (!is_int && HM_DTYPE(x) != NPY_FLOAT32) {
        HmTensor *xf = hm_as_float_tensor((PyObject *)x, name, "input");   /* bool -> float32 */
        Py_DECREF(x);
        if (!(x = xf)) return NULL;
    }
    int dim = 0;
    PyObject *dimdefault = PyLong_FromLong(-1);
    if (!dimdefault) goto done;
    int rc = hm_parse_dim(dimo && dimo != Py_None ? dimo : dimdefault, HM_NDIM(x), name, &dim);
    Py_DECREF(dimdefault);
    if (rc < 0) goto done;
    layout l = layout_of(x, dim);
    if (check_row_length(&l, name) < 0) goto done;
    idx = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_INT64);
    if (want_values) vals = hm_empty(HM_NDIM(x), HM_SHAPE(x), is_int ? NPY_INT64 : NPY_FLOAT32);
    if (!idx || (want_values && !vals)) goto done;
    int slots;
    void *scr = sort_scratch(&l, &slots);
    if (!scr) goto done;
    void *xd = PyArray_DATA(x->arr);
    Py_BEGIN_ALLOW_THREADS
    if (is_int)
        hm_sort_i64_forward(vals ? (int64_t *)PyArray_DATA(vals) : NULL, (int64_t *)PyArray_DATA(idx), xd, l.outer,
                            l.n, l.inner, descending, slots, scr);
    else
        hm_sort_f32_forward(vals ? AF32(vals) : NULL, (int64_t *)PyArray_DATA(idx), xd, l.outer, l.n, l.inner,
                            descending, slots, scr);
    Py_END_ALLOW_THREADS
    hm_scratch_free(scr);
    if (!want_values) {
        result = hm_wrap(idx);
        idx = NULL;
        goto done;
    }
    HmNode *node = NULL;
    if (!is_int) {
        PyObject *inputs[1] = {(PyObject *)x};
        node = hm_node_new("SortBackward", sort_backward, inputs, 1);
        if (!node && PyErr_Occurred()) goto done;
        if (node) {
            node->i[0] = l.outer; node->i[1] = l.n; node->i[2] = l.inner;
            if (hm_node_save(node, (PyObject *)idx) < 0) { Py_DECREF(node); goto done; }
        }
    }
    PyObject *tv = hm_wrap_with_node(vals, (PyObject *)node);
    vals = NULL;
    PyObject *ti = hm_wrap(idx);
    idx = NULL;
    if (tv && ti) result = PyTuple_Pack(2, tv, ti);
    Py_XDECREF(tv);
    Py_XDECREF(ti);
done:
    Py_XDECREF(vals);
    Py_XDECREF(idx);
    Py_DECREF(x);
    return result;
}

static PyObject *py_sort(PyObject *s, PyObject *a, PyObject *k) { (void)s; return sort_impl(a, k, 1); }
static PyObject *py_argsort(PyObject *s, PyObject *a, PyObject *k) { (void)s; return sort_impl(a, k, 0); }

/* ------------------------------------------------------ quantile / median */

/* node: i[0..3] = outer, n, inner, nq; saved = lo, hi, w arrays. The engine
 * hands g in the output's shape, which is [nq, outer, inner] in memory. */
static int quantile_backward(HmNode *nd, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *lo = hm_node_saved(nd, 0), *hi = hm_node_saved(nd, 1), *w = hm_node_saved(nd, 2);
    if (!lo || !hi || !w) return -1;
    npy_intp shape[HM_MAX_DIMS];
    int ndim = (int)nd->i[4];
    for (int d = 0; d < ndim; d++) shape[d] = (npy_intp)nd->i[5 + d];
    PyArrayObject *dx = hm_empty(ndim, shape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_quantile_backward(AF32(dx), AF32(g), (const int64_t *)PyArray_DATA(lo), (const int64_t *)PyArray_DATA(hi),
                         AF32(w), nd->i[3], nd->i[0], nd->i[1], nd->i[2]);
    gin[0] = dx;
    return 0;
}

/* median()/nanmedian() without dim: saved[0] = the input tensor, f[0] = the
 * median; the gradient is shared among the entries equal to it (torch). */
static int median_all_backward(HmNode *nd, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(nd, 0);
    if (!x) return -1;
    PyArrayObject *dx = hm_empty_like(x);
    if (!dx) return -1;
    hm_median_all_backward(AF32(dx), AF32(x), (int64_t)PyArray_SIZE(x), (float)nd->f[0], AF32(g)[0]);
    gin[0] = dx;
    return 0;
}

static int parse_interpolation(PyObject *o, const char *opname, int *mode) {
    static const char *names[] = {"linear", "lower", "higher", "midpoint", "nearest"};
    const char *s = o && PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (!o || o == Py_None) { *mode = HM_Q_LINEAR; return 0; }
    for (int k = 0; s && k < 5; k++)
        if (!strcmp(s, names[k])) { *mode = k; return 0; }
    PyErr_Clear();
    PyObject *r = PyObject_Repr(o);
    PyErr_Format(PyExc_ValueError,
                 "%s(): argument 'interpolation' must be one of 'linear', 'lower', 'higher', 'midpoint', "
                 "'nearest', got %s", opname, r ? PyUnicode_AsUTF8(r) : "?");
    Py_XDECREF(r);
    return -1;
}

/* The shared core: values [qshape..., kept dims] and, for median with dim, the
 * positions along dim. q == NULL means the median (no q dim). */
static PyObject *order_stat(HmTensor *x, HmTensor *q, PyObject *dimo, int keepdim, int mode, int ignore_nan,
                            const char *name, int want_indices) {
    PyObject *result = NULL;
    PyArrayObject *out = NULL, *lo = NULL, *hi = NULL, *w = NULL;
    int nd = HM_NDIM(x);
    int dim = -1;
    if (dimo && dimo != Py_None && hm_parse_dim(dimo, nd, name, &dim) < 0) return NULL;
    if (nd == 0) dim = -1;
    layout l = layout_of(x, dim);
    if (check_row_length(&l, name) < 0) return NULL;
    int64_t nq = 1;
    int qvec = 0;
    const float *qd = NULL;
    float half = 0.5f;
    if (q) {
        if (HM_NDIM(q) > 1) {
            char b[160];
            hm_shape_str(HM_NDIM(q), HM_SHAPE(q), b, sizeof b);
            PyErr_Format(PyExc_ValueError, "%s(): argument 'q' must be a number or a 1-D tensor, got shape %s",
                         name, b);
            return NULL;
        }
        qvec = HM_NDIM(q) == 1;
        nq = HM_NUMEL(q);
        qd = HM_F32(q);
        for (int64_t k = 0; k < nq; k++)
            if (!(qd[k] >= 0.0f && qd[k] <= 1.0f)) {
                char b[64];   /* PyErr_Format has no %g */
                snprintf(b, sizeof b, "%g", (double)qd[k]);
                PyErr_Format(PyExc_ValueError, "%s(): argument 'q' must lie in [0, 1], got %s", name, b);
                return NULL;
            }
    } else {
        qd = &half;
    }
    if (HM_NUMEL(x) == 0 && (q || dim >= 0)) {
        char b[160];
        hm_shape_str(nd, HM_SHAPE(x), b, sizeof b);
        if (q) PyErr_Format(PyExc_ValueError, "%s(): argument 'input' must be non-empty, got shape %s", name, b);
        else if (l.n == 0)
            PyErr_Format(PyExc_IndexError, "%s(): cannot take the median over dim %d of size 0 (input shape %s)",
                         name, dim, b);
        if (PyErr_Occurred()) return NULL;
    }
    /* output shape: [nq] (when q is 1-D), then the input's dims without dim
     * (or with size 1 when keepdim; dim=None: none, or all 1 when keepdim) */
    npy_intp oshape[HM_MAX_DIMS + 1];
    int ond = 0;
    if (qvec) oshape[ond++] = (npy_intp)nq;
    for (int d = 0; d < nd; d++) {
        if (dim >= 0 && d != dim) oshape[ond++] = HM_SHAPE(x)[d];
        else if (keepdim) oshape[ond++] = 1;
    }
    if (ond > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s(): the result would have %d dims; at most %d are supported", name, ond,
                     HM_MAX_DIMS);
        return NULL;
    }
    int64_t rows = l.outer * l.inner;
    out = hm_empty(ond, oshape, NPY_FLOAT32);
    lo = hm_empty(ond, oshape, NPY_INT64);
    hi = hm_empty(ond, oshape, NPY_INT64);
    w = hm_empty(ond, oshape, NPY_FLOAT32);
    if (!out || !lo || !hi || !w) goto done;
    if (l.n == 0) {   /* median of an empty tensor without dim: nan, as torch */
        for (int64_t k = 0; k < nq * rows; k++) {
            AF32(out)[k] = NAN;
            ((int64_t *)PyArray_DATA(lo))[k] = ((int64_t *)PyArray_DATA(hi))[k] = 0;
            AF32(w)[k] = 0.0f;
        }
    } else if (rows > 0) {
        int slots;
        void *scr = sort_scratch(&l, &slots);
        if (!scr) goto done;
        const float *xd = HM_F32(x);
        Py_BEGIN_ALLOW_THREADS
        hm_quantile_forward(AF32(out), (int64_t *)PyArray_DATA(lo), (int64_t *)PyArray_DATA(hi), AF32(w), xd, qd, nq,
                            l.outer, l.n, l.inner, mode, ignore_nan, slots, scr);
        Py_END_ALLOW_THREADS
        hm_scratch_free(scr);
    }
    PyObject *inputs[1] = {(PyObject *)x};
    int median_all = !q && dim < 0;
    HmNode *node = l.n == 0 ? NULL
                 : median_all ? hm_node_new("MedianBackward", median_all_backward, inputs, 1)
                 : hm_node_new(q ? "QuantileBackward" : "MedianBackward", quantile_backward, inputs, 1);
    if (!node && PyErr_Occurred()) goto done;
    if (node && median_all) {
        node->f[0] = AF32(out)[0];
        if (hm_node_save(node, (PyObject *)x) < 0) { Py_DECREF(node); goto done; }
    } else if (node) {
        node->i[0] = l.outer; node->i[1] = l.n; node->i[2] = l.inner; node->i[3] = nq;
        node->i[4] = nd;
        for (int d = 0; d < nd; d++) node->i[5 + d] = HM_SHAPE(x)[d];
        if (hm_node_save(node, (PyObject *)lo) < 0 || hm_node_save(node, (PyObject *)hi) < 0 ||
            hm_node_save(node, (PyObject *)w) < 0) {
            Py_DECREF(node);
            goto done;
        }
    }
    PyObject *tv = hm_wrap_with_node(out, (PyObject *)node);
    out = NULL;
    if (!want_indices) { result = tv; goto done; }
    PyObject *ti = hm_wrap(lo);
    lo = NULL;
    if (tv && ti) result = PyTuple_Pack(2, tv, ti);
    Py_XDECREF(tv);
    Py_XDECREF(ti);
done:
    Py_XDECREF(out);
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    Py_XDECREF(w);
    return result;
}

static PyObject *quantile_impl(PyObject *args, PyObject *kw, int ignore_nan) {
    const char *name = ignore_nan ? "nanquantile" : "quantile";
    static char *kwlist[] = {"input", "q", "dim", "keepdim", "interpolation", NULL};
    PyObject *xo, *qo, *dimo = Py_None, *interp = NULL;
    int keepdim = 0, mode;
    if (!PyArg_ParseTupleAndKeywords(args, kw, ignore_nan ? "OO|OpO:nanquantile" : "OO|OpO:quantile", kwlist, &xo,
                                     &qo, &dimo, &keepdim, &interp))
        return NULL;
    if (parse_interpolation(interp, name, &mode) < 0) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, name, "input");
    if (!x) return NULL;
    HmTensor *q = hm_as_float_tensor(qo, name, "q");
    PyObject *r = q ? order_stat(x, q, dimo, keepdim, mode, ignore_nan, name, 0) : NULL;
    Py_XDECREF(q);
    Py_DECREF(x);
    return r;
}

static PyObject *median_impl(PyObject *args, PyObject *kw, int ignore_nan) {
    const char *name = ignore_nan ? "nanmedian" : "median";
    static char *kwlist[] = {"input", "dim", "keepdim", NULL};
    PyObject *xo, *dimo = Py_None;
    int keepdim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, ignore_nan ? "O|Op:nanmedian" : "O|Op:median", kwlist, &xo, &dimo,
                                     &keepdim))
        return NULL;
    HmTensor *x = hm_as_float_tensor(xo, name, "input");
    if (!x) return NULL;
    int with_dim = dimo != Py_None;
    PyObject *r = order_stat(x, NULL, dimo, with_dim ? keepdim : 0, HM_Q_MEDIAN, ignore_nan, name, with_dim);
    Py_DECREF(x);
    return r;
}

static PyObject *py_quantile(PyObject *s, PyObject *a, PyObject *k) { (void)s; return quantile_impl(a, k, 0); }
static PyObject *py_nanquantile(PyObject *s, PyObject *a, PyObject *k) { (void)s; return quantile_impl(a, k, 1); }
static PyObject *py_median(PyObject *s, PyObject *a, PyObject *k) { (void)s; return median_impl(a, k, 0); }
static PyObject *py_nanmedian(PyObject *s, PyObject *a, PyObject *k) { (void)s; return median_impl(a, k, 1); }

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS
PyMethodDef hm_methods_sort[] = {
    {"sort", KW(py_sort), "sort(input, dim=-1, descending=False, stable=False) -> (values, indices): stable radix sort; NaN last."},
    {"argsort", KW(py_argsort), "argsort(input, dim=-1, descending=False, stable=False) -> int64 indices."},
    {"quantile", KW(py_quantile), "quantile(input, q, dim=None, keepdim=False, interpolation='linear')."},
    {"nanquantile", KW(py_nanquantile), "nanquantile(input, q, dim=None, keepdim=False, interpolation='linear'): ignoring NaN."},
    {"median", KW(py_median), "median(input, dim=None, keepdim=False): lower median; with dim (values, indices)."},
    {"nanmedian", KW(py_nanmedian), "nanmedian(input, dim=None, keepdim=False): median of the non-NaN entries."},
    {NULL, NULL, 0, NULL},
};
