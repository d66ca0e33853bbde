/*
 * Reductions (sum, mean, prod, max/min, argmax/argmin, amax/amin, var/std,
 * logsumexp, nansum/nanmean, norm), scans (cumsum) and softmax/log_softmax.
 *
 * Every op maps its dim argument onto the kernels' [outer, r, inner] view:
 * size-1 dims are ignored, and when the reduced dims form one run the input
 * is used as it is; otherwise (e.g. dims (0, 2) of a 3-d tensor) a permuted
 * copy puts the kept dims first and the reduced ones last. Backward kernels
 * produce the gradient in that same view, and a permuted one is copied back.
 */
#include "hm.h"
#include "reduce.h"
#include "shape.h"
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------- the plan */

typedef struct {
    int ndim;
    npy_intp shape[HM_MAX_DIMS];
    uint32_t mask;
    int keepdim;
    int permute;            /* input must be permuted (kept dims, then reduced) */
    int perm[HM_MAX_DIMS];
    int64_t outer, r, inner;
    int out_nd;
    npy_intp out_shape[HM_MAX_DIMS];
} rplan;

static void plan_from_mask(rplan *p, int ndim, const npy_intp *shape, uint32_t mask, int keepdim) {
    p->ndim = ndim;
    p->mask = mask;
    p->keepdim = keepdim;
    p->out_nd = 0;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        if (!(mask & (1u << d))) p->out_shape[p->out_nd++] = shape[d];
        else if (keepdim) p->out_shape[p->out_nd++] = 1;
    }
    /* Does the set of reduced dims (ignoring size-1 dims) form one run? */
    int runs = 0, prev = -1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int red = (mask >> d) & 1;
        if (red && prev != 1) runs++;
        prev = red;
    }
    p->outer = p->r = p->inner = 1;
    p->permute = runs > 1;
    if (!p->permute) {
        int seen_red = 0;
        for (int d = 0; d < ndim; d++) {
            if (shape[d] == 1) continue;
            if ((mask >> d) & 1) { p->r *= shape[d]; seen_red = 1; }
            else if (seen_red) p->inner *= shape[d];
            else p->outer *= shape[d];
        }
        return;
    }
    int k = 0;
    for (int d = 0; d < ndim; d++)
        if (!((mask >> d) & 1)) { p->perm[k++] = d; p->outer *= shape[d]; }
    for (int d = 0; d < ndim; d++)
        if ((mask >> d) & 1) { p->perm[k++] = d; p->r *= shape[d]; }
}

/* dim None, an int, or a sequence; an empty sequence means every dim (as torch). */
static int make_plan(rplan *p, HmTensor *x, PyObject *dim, int keepdim, const char *opname) {
    uint32_t mask;
    int nd = HM_NDIM(x);
    if (hm_parse_dims(dim, nd, opname, &mask) < 0) return -1;
    if (dim && dim != Py_None && !PyLong_Check(dim) && mask == 0) hm_parse_dims(Py_None, nd, opname, &mask);
    plan_from_mask(p, nd, HM_SHAPE(x), mask, keepdim);
    return 0;
}

static void contiguous_strides(int nd, const npy_intp *shape, int64_t *stride) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) { stride[d] = s; s *= shape[d]; }
}

/* The input in the plan's layout: a new reference to the same array, or a
 * permuted copy. */
static PyArrayObject *to_canonical(PyArrayObject *a, const rplan *p) {
    if (!p->permute) { Py_INCREF(a); return a; }
    PyArrayObject *out = hm_empty(p->ndim, p->shape, PyArray_TYPE(a));
    if (!out) return NULL;
    int64_t st[HM_MAX_DIMS], pshape[HM_MAX_DIMS], pst[HM_MAX_DIMS];
    contiguous_strides(p->ndim, p->shape, st);
    for (int q = 0; q < p->ndim; q++) { pshape[q] = p->shape[p->perm[q]]; pst[q] = st[p->perm[q]]; }
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(a), PyArray_ITEMSIZE(a), p->ndim, pshape, pst);
    return out;
}

/* A gradient computed in the plan's layout, back in the input's layout.
 * Steals dxp. */
static PyArrayObject *from_canonical(PyArrayObject *dxp, const rplan *p) {
    if (!dxp || !p->permute) return dxp;
    PyArrayObject *dx = hm_empty(p->ndim, p->shape, NPY_FLOAT32);
    if (!dx) { Py_DECREF(dxp); return NULL; }
    /* strides of the permuted layout, seen from the original dims */
    npy_intp pshape[HM_MAX_DIMS];
    int64_t pst[HM_MAX_DIMS], st[HM_MAX_DIMS], shape[HM_MAX_DIMS];
    for (int q = 0; q < p->ndim; q++) pshape[q] = p->shape[p->perm[q]];
    contiguous_strides(p->ndim, pshape, pst);
    for (int q = 0; q < p->ndim; q++) st[p->perm[q]] = pst[q];
    for (int d = 0; d < p->ndim; d++) shape[d] = p->shape[d];
    hm_strided_copy(AF32(dx), AF32(dxp), 4, p->ndim, shape, st);
    Py_DECREF(dxp);
    return dx;
}

/* Plans travel in node->i: [0] ndim, [1..8] shape, [9] mask, [10] keepdim. */
static void plan_store(HmNode *n, const rplan *p) {
    n->i[0] = p->ndim;
    for (int d = 0; d < p->ndim; d++) n->i[1 + d] = p->shape[d];
    n->i[9] = p->mask;
    n->i[10] = p->keepdim;
}

static void plan_load(HmNode *n, rplan *p) {
    npy_intp shape[HM_MAX_DIMS];
    int nd = (int)n->i[0];
    for (int d = 0; d < nd; d++) shape[d] = (npy_intp)n->i[1 + d];
    plan_from_mask(p, nd, shape, (uint32_t)n->i[9], (int)n->i[10]);
}

static int require_nonempty(const rplan *p, const char *opname) {
    if (p->r > 0) return 0;
    char b[160];
    hm_shape_str(p->ndim, p->shape, b, sizeof b);
    PyErr_Format(PyExc_IndexError,
                 "%s(): cannot reduce over zero elements: input has shape %s and the reduced dims contain no "
                 "elements (the maximum/minimum of nothing is undefined); pass a dim of non-zero size", opname, b);
    return -1;
}

/* Record a node (NULL result without error when no grad is needed). */
static HmNode *new_node(const char *name, hm_backward_fn fn, HmTensor *x) {
    PyObject *inputs[1] = {(PyObject *)x};
    return hm_node_new(name, fn, inputs, 1);
}

/* Shared argument parsing: (input, dim=None, keepdim=False). */
static HmTensor *parse_reduce_args(PyObject *args, PyObject *kw, const char *fmt, const char *opname, PyObject **dim,
                                   int *keepdim, int to_float) {
    static char *kwlist[] = {"input", "dim", "keepdim", NULL};
    PyObject *xo;
    *dim = Py_None;
    *keepdim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &xo, dim, keepdim)) return NULL;
    return to_float ? hm_as_float_tensor(xo, opname, "input") : hm_as_tensor(xo, opname, "input");
}

/* ------------------------------------------------------------- sum/mean */

static int sum_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    rplan p;
    plan_load(n, &p);
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (!dx) return -1;
    float scale = n->i[11] ? (float)(1.0 / (double)p.r) : 1.0f;
    hm_sum_backward(AF32(dx), AF32(g), p.outer, p.r, p.inner, scale);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

static PyObject *sum_mean(PyObject *args, PyObject *kw, int mean) {
    const char *name = mean ? "mean" : "sum";
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, mean ? "O|Op:mean" : "O|Op:sum", name, &dim, &keepdim, mean);
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, name) < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    int t = HM_DTYPE(x);
    if (t != NPY_FLOAT32) {
        /* sums of masks and indices count: int64, as torch */
        PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_INT64);
        if (out) {
            if (t == NPY_INT64) hm_sum_i64_forward(PyArray_DATA(out), PyArray_DATA(xc), p.outer, p.r, p.inner);
            else hm_sum_u8_forward(PyArray_DATA(out), PyArray_DATA(xc), p.outer, p.r, p.inner);
        }
        Py_DECREF(xc);
        result = hm_wrap(out);
        goto done;
    }
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); goto done; }
    hm_sum_forward(AF32(out), AF32(xc), p.outer, p.r, p.inner, mean ? (double)p.r : 1.0);
    Py_DECREF(xc);
    HmNode *node = new_node(mean ? "MeanBackward" : "SumBackward", sum_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) { plan_store(node, &p); node->i[11] = mean; }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

static PyObject *py_sum(PyObject *s, PyObject *a, PyObject *k) { (void)s; return sum_mean(a, k, 0); }
static PyObject *py_mean(PyObject *s, PyObject *a, PyObject *k) { (void)s; return sum_mean(a, k, 1); }

/* ------------------------------------------------------- nansum/nanmean */

static int nansum_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0);
    if (!x) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx) hm_nansum_backward(AF32(dx), AF32(g), AF32(xc), p.outer, p.r, p.inner, (int)n->i[11]);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

static PyObject *nansum_mean(PyObject *args, PyObject *kw, int mean) {
    const char *name = mean ? "nanmean" : "nansum";
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, mean ? "O|Op:nanmean" : "O|Op:nansum", name, &dim, &keepdim, 1);
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, name) < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); goto done; }
    hm_nansum_forward(AF32(out), AF32(xc), p.outer, p.r, p.inner, mean);
    Py_DECREF(xc);
    HmNode *node = new_node(mean ? "NanmeanBackward" : "NansumBackward", nansum_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        plan_store(node, &p);
        node->i[11] = mean;
        if (hm_node_save(node, (PyObject *)x) < 0) { Py_DECREF(node); Py_DECREF(out); goto done; }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

static PyObject *py_nansum(PyObject *s, PyObject *a, PyObject *k) { (void)s; return nansum_mean(a, k, 0); }
static PyObject *py_nanmean(PyObject *s, PyObject *a, PyObject *k) { (void)s; return nansum_mean(a, k, 1); }

/* ------------------------------------------------------------------ prod */

static int prod_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0);
    if (!x) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx) hm_prod_backward(AF32(dx), AF32(g), AF32(xc), p.outer, p.r, p.inner);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

static PyObject *py_prod(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, "O|Op:prod", "prod", &dim, &keepdim, 1);
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, "prod") < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); goto done; }
    hm_prod_forward(AF32(out), AF32(xc), p.outer, p.r, p.inner);
    Py_DECREF(xc);
    HmNode *node = new_node("ProdBackward", prod_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        plan_store(node, &p);
        if (hm_node_save(node, (PyObject *)x) < 0) { Py_DECREF(node); Py_DECREF(out); goto done; }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------- amax/amin (and max()) */

static int amax_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *val = x ? hm_node_saved(n, 1) : NULL;
    if (!val) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx) hm_amax_backward(AF32(dx), AF32(g), AF32(xc), AF32(val), p.outer, p.r, p.inner);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

/* amax/amin over a plan; node name given (max() without dim is amax in torch too). */
static PyObject *amax_impl(HmTensor *x, const rplan *p, int is_min, const char *opname, const char *nodename) {
    if (require_nonempty(p, opname) < 0) return NULL;
    PyArrayObject *xc = to_canonical(x->arr, p);
    if (!xc) return NULL;
    PyArrayObject *out = hm_empty(p->out_nd, p->out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); return NULL; }
    hm_maxmin_forward(AF32(out), NULL, AF32(xc), p->outer, p->r, p->inner, is_min);
    Py_DECREF(xc);
    HmNode *node = new_node(nodename, amax_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    if (node) {
        plan_store(node, p);
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)out) < 0) {
            Py_DECREF(node);
            Py_DECREF(out);
            return NULL;
        }
    }
    return hm_wrap_with_node(out, (PyObject *)node);
}

static PyObject *amax_amin(PyObject *args, PyObject *kw, int is_min) {
    const char *name = is_min ? "amin" : "amax";
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, is_min ? "O|Op:amin" : "O|Op:amax", name, &dim, &keepdim, 1);
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, name) == 0)
        result = amax_impl(x, &p, is_min, name, is_min ? "AminBackward" : "AmaxBackward");
    Py_DECREF(x);
    return result;
}

static PyObject *py_amax(PyObject *s, PyObject *a, PyObject *k) { (void)s; return amax_amin(a, k, 0); }
static PyObject *py_amin(PyObject *s, PyObject *a, PyObject *k) { (void)s; return amax_amin(a, k, 1); }

/* ------------------------------------------------- max/min with a dim, argmax */

static int maxdim_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *idx = hm_node_saved(n, 0);
    if (!idx) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_select_backward(AF32(dx), AF32(g), (const int64_t *)PyArray_DATA(idx), p.outer, p.r, p.inner);
    gin[0] = dx; /* one dim: never permuted */
    return 0;
}

/* max(input, dim=None, keepdim=False): without dim, the maximum over all
 * elements (gradient split evenly among ties, as torch); with an int dim, a
 * tuple (values, indices) (gradient to the first maximal position). */
static PyObject *maxmin(PyObject *args, PyObject *kw, int is_min) {
    const char *name = is_min ? "min" : "max";
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, is_min ? "O|Op:min" : "O|Op:max", name, &dim, &keepdim, 1);
    if (!x) return NULL;
    PyObject *result = NULL;
    rplan p;
    if (dim == Py_None) {
        if (make_plan(&p, x, Py_None, keepdim, name) == 0)
            result = amax_impl(x, &p, is_min, name, is_min ? "MinBackward1" : "MaxBackward1");
        goto done;
    }
    if (!PyLong_Check(dim)) {
        if (hm_is_tensor(dim) || PyArray_Check(dim))
            PyErr_Format(PyExc_TypeError, "%s(): the second argument must be an int dim; for the elementwise %s of two "
                         "tensors use hepml.%s", name, name, is_min ? "minimum" : "maximum");
        else
            PyErr_Format(PyExc_TypeError, "%s(): dim must be an int (use amax/amin for several dims), got %s", name,
                         Py_TYPE(dim)->tp_name);
        goto done;
    }
    if (make_plan(&p, x, dim, keepdim, name) < 0 || require_nonempty(&p, name) < 0) goto done;
    PyArrayObject *val = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    PyArrayObject *idx = val ? hm_empty(p.out_nd, p.out_shape, NPY_INT64) : NULL;
    if (!idx) { Py_XDECREF(val); goto done; }
    hm_maxmin_forward(AF32(val), (int64_t *)PyArray_DATA(idx), HM_F32(x), p.outer, p.r, p.inner, is_min);
    HmNode *node = new_node(is_min ? "MinBackward0" : "MaxBackward0", maxdim_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(val); Py_DECREF(idx); goto done; }
    if (node) {
        plan_store(node, &p);
        if (hm_node_save(node, (PyObject *)idx) < 0) { Py_DECREF(node); Py_DECREF(val); Py_DECREF(idx); goto done; }
    }
    PyObject *tv = hm_wrap_with_node(val, (PyObject *)node);
    PyObject *ti = hm_wrap(idx);
    if (tv && ti) result = PyTuple_Pack(2, tv, ti);
    Py_XDECREF(tv);
    Py_XDECREF(ti);
done:
    Py_DECREF(x);
    return result;
}

static PyObject *py_max(PyObject *s, PyObject *a, PyObject *k) { (void)s; return maxmin(a, k, 0); }
static PyObject *py_min(PyObject *s, PyObject *a, PyObject *k) { (void)s; return maxmin(a, k, 1); }

/* argmax(input, dim=None, keepdim=False): int64 positions, no gradient;
 * without dim the position in the flattened tensor. */
static PyObject *argmaxmin(PyObject *args, PyObject *kw, int is_min) {
    const char *name = is_min ? "argmin" : "argmax";
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, is_min ? "O|Op:argmin" : "O|Op:argmax", name, &dim, &keepdim, 1);
    if (!x) return NULL;
    PyObject *result = NULL;
    rplan p;
    if (dim != Py_None && !PyLong_Check(dim)) {
        PyErr_Format(PyExc_TypeError, "%s(): dim must be None or an int, got %s", name, Py_TYPE(dim)->tp_name);
        goto done;
    }
    if (make_plan(&p, x, dim, keepdim, name) < 0 || require_nonempty(&p, name) < 0) goto done;
    if (dim == Py_None) {
        /* flattened position: read the whole tensor as one row */
        p.outer = 1;
        p.inner = 1;
        p.r = HM_NUMEL(x);
        p.permute = 0;
    }
    PyArrayObject *idx = hm_empty(p.out_nd, p.out_shape, NPY_INT64);
    if (!idx) goto done;
    hm_maxmin_forward(NULL, (int64_t *)PyArray_DATA(idx), HM_F32(x), p.outer, p.r, p.inner, is_min);
    result = hm_wrap(idx);
done:
    Py_DECREF(x);
    return result;
}

static PyObject *py_argmax(PyObject *s, PyObject *a, PyObject *k) { (void)s; return argmaxmin(a, k, 0); }
static PyObject *py_argmin(PyObject *s, PyObject *a, PyObject *k) { (void)s; return argmaxmin(a, k, 1); }

/* --------------------------------------------------------------- var/std */

static int var_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *mean = x ? hm_node_saved(n, 1) : NULL,
                  *out = mean ? hm_node_saved(n, 2) : NULL;
    if (!out) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx)
        hm_var_backward(AF32(dx), AF32(g), AF32(xc), AF32(mean), AF32(out), p.outer, p.r, p.inner, n->f[0],
                        (int)n->i[11]);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

/* var(input, dim=None, correction=1.0, keepdim=False, take_sqrt=False) */
static PyObject *py_var(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "dim", "correction", "keepdim", "take_sqrt", NULL};
    PyObject *xo, *dim = Py_None;
    double correction = 1.0;
    int keepdim = 0, take_sqrt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Odpp:var", kwlist, &xo, &dim, &correction, &keepdim, &take_sqrt))
        return NULL;
    const char *name = take_sqrt ? "std" : "var";
    HmTensor *x = hm_as_float_tensor(xo, name, "input");
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, name) < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    PyArrayObject *mean = out ? hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32) : NULL;
    if (!mean) { Py_XDECREF(out); Py_DECREF(xc); goto done; }
    hm_var_forward(AF32(out), AF32(mean), AF32(xc), p.outer, p.r, p.inner, correction, take_sqrt);
    Py_DECREF(xc);
    HmNode *node = new_node(take_sqrt ? "StdBackward" : "VarBackward", var_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); Py_DECREF(mean); goto done; }
    if (node) {
        plan_store(node, &p);
        node->i[11] = take_sqrt;
        node->f[0] = correction;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)mean) < 0 ||
            hm_node_save(node, (PyObject *)out) < 0) {
            Py_DECREF(node); Py_DECREF(out); Py_DECREF(mean);
            goto done;
        }
    }
    Py_DECREF(mean);
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------------- logsumexp */

static int logsumexp_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *out = x ? hm_node_saved(n, 1) : NULL;
    if (!out) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx) hm_logsumexp_backward(AF32(dx), AF32(g), AF32(xc), AF32(out), p.outer, p.r, p.inner);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

static PyObject *py_logsumexp(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    PyObject *dim;
    int keepdim;
    HmTensor *x = parse_reduce_args(args, kw, "O|Op:logsumexp", "logsumexp", &dim, &keepdim, 1);
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, "logsumexp") < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); goto done; }
    hm_logsumexp_forward(AF32(out), AF32(xc), p.outer, p.r, p.inner);
    Py_DECREF(xc);
    HmNode *node = new_node("LogsumexpBackward", logsumexp_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        plan_store(node, &p);
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)out) < 0) {
            Py_DECREF(node); Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------------------ norm */

static int norm_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *out = x ? hm_node_saved(n, 1) : NULL;
    if (!out) return -1;
    rplan p;
    plan_load(n, &p);
    PyArrayObject *xc = to_canonical(x, &p);
    if (!xc) return -1;
    PyArrayObject *dx = hm_empty(p.ndim, p.shape, NPY_FLOAT32);
    if (dx) hm_norm_backward(AF32(dx), AF32(g), AF32(xc), AF32(out), p.outer, p.r, p.inner, n->f[0]);
    Py_DECREF(xc);
    gin[0] = from_canonical(dx, &p);
    return gin[0] ? 0 : -1;
}

/* norm(input, p=2.0, dim=None, keepdim=False): vector p-norm over dims. */
static PyObject *py_norm(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "p", "dim", "keepdim", NULL};
    PyObject *xo, *dim = Py_None;
    double pw = 2.0;
    int keepdim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dOp:norm", kwlist, &xo, &pw, &dim, &keepdim)) return NULL;
    if (!(pw > 0) || isinf(pw)) {
        PyErr_Format(PyExc_ValueError, "norm(): p must be a finite number > 0, got %g (for the max norm use "
                     "x.abs().amax(dim))", pw);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "norm", "input");
    if (!x) return NULL;
    rplan p;
    PyObject *result = NULL;
    if (make_plan(&p, x, dim, keepdim, "norm") < 0) goto done;
    PyArrayObject *xc = to_canonical(x->arr, &p);
    if (!xc) goto done;
    PyArrayObject *out = hm_empty(p.out_nd, p.out_shape, NPY_FLOAT32);
    if (!out) { Py_DECREF(xc); goto done; }
    hm_norm_forward(AF32(out), AF32(xc), p.outer, p.r, p.inner, pw);
    Py_DECREF(xc);
    HmNode *node = new_node("NormBackward", norm_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        plan_store(node, &p);
        node->f[0] = pw;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)out) < 0) {
            Py_DECREF(node); Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* --------------------------------------------------- one-dim ops: cumsum, softmax */

/* [outer, r, inner] around one dim of x's shape. */
static void split_at(HmTensor *x, int dim, int64_t *outer, int64_t *r, int64_t *inner) {
    *outer = *r = *inner = 1;
    for (int d = 0; d < HM_NDIM(x); d++) {
        if (d < dim) *outer *= HM_SHAPE(x)[d];
        else if (d == dim) *r = HM_SHAPE(x)[d];
        else *inner *= HM_SHAPE(x)[d];
    }
}

static int cumsum_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    hm_cumsum(AF32(dx), AF32(g), n->i[0], n->i[1], n->i[2], 1);
    gin[0] = dx;
    return 0;
}

static PyObject *py_cumsum(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "dim", NULL};
    PyObject *xo, *dim;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:cumsum", kwlist, &xo, &dim)) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, "cumsum", "input");
    if (!x) return NULL;
    int d;
    PyObject *result = NULL;
    if (hm_parse_dim(dim, HM_NDIM(x), "cumsum", &d) < 0) goto done;
    int64_t outer, r, inner;
    split_at(x, d, &outer, &r, &inner);
    PyArrayObject *out = hm_empty_like(x->arr);
    if (!out) goto done;
    hm_cumsum(AF32(out), HM_F32(x), outer, r, inner, 0);
    HmNode *node = new_node("CumsumBackward", cumsum_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) { node->i[0] = outer; node->i[1] = r; node->i[2] = inner; }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

static int softmax_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *y = hm_node_saved(n, 0);
    if (!y) return -1;
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    hm_softmax_backward(AF32(dx), AF32(g), AF32(y), n->i[0], n->i[1], n->i[2], (int)n->i[3]);
    gin[0] = dx;
    return 0;
}

static PyObject *softmax_impl(PyObject *args, PyObject *kw, int log_) {
    static char *kwlist[] = {"input", "dim", NULL};
    const char *name = log_ ? "log_softmax" : "softmax";
    PyObject *xo, *dim = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, log_ ? "OO:log_softmax" : "OO:softmax", kwlist, &xo, &dim)) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, name, "input");
    if (!x) return NULL;
    int d;
    PyObject *result = NULL;
    if (dim == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s(): dim is required (e.g. dim=-1 for the last axis)", name);
        goto done;
    }
    if (hm_parse_dim(dim, HM_NDIM(x), name, &d) < 0) goto done;
    int64_t outer, r, inner;
    split_at(x, d, &outer, &r, &inner);
    PyArrayObject *out = hm_empty_like(x->arr);
    if (!out) goto done;
    hm_softmax_forward(AF32(out), HM_F32(x), outer, r, inner, log_);
    HmNode *node = new_node(log_ ? "LogSoftmaxBackward" : "SoftmaxBackward", softmax_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = outer; node->i[1] = r; node->i[2] = inner; node->i[3] = log_;
        if (hm_node_save(node, (PyObject *)out) < 0) { Py_DECREF(node); Py_DECREF(out); goto done; }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

static PyObject *py_softmax(PyObject *s, PyObject *a, PyObject *k) { (void)s; return softmax_impl(a, k, 0); }
static PyObject *py_log_softmax(PyObject *s, PyObject *a, PyObject *k) { (void)s; return softmax_impl(a, k, 1); }

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef hm_methods_reduce[] = {
    {"sum", KW(py_sum), "sum(input, dim=None, keepdim=False): sum over dims (all when None); bool/int64 -> int64."},
    {"mean", KW(py_mean), "mean(input, dim=None, keepdim=False): mean over dims (nan for no elements)."},
    {"nansum", KW(py_nansum), "nansum(input, dim=None, keepdim=False): sum ignoring NaNs."},
    {"nanmean", KW(py_nanmean), "nanmean(input, dim=None, keepdim=False): mean of the non-NaN entries."},
    {"prod", KW(py_prod), "prod(input, dim=None, keepdim=False): product over dims."},
    {"amax", KW(py_amax), "amax(input, dim=None, keepdim=False): maximum over dims (ties share the gradient)."},
    {"amin", KW(py_amin), "amin(input, dim=None, keepdim=False): minimum over dims (ties share the gradient)."},
    {"max", KW(py_max), "max(input, dim=None, keepdim=False): max of all, or (values, indices) along dim."},
    {"min", KW(py_min), "min(input, dim=None, keepdim=False): min of all, or (values, indices) along dim."},
    {"argmax", KW(py_argmax), "argmax(input, dim=None, keepdim=False): int64 index of the (first) maximum."},
    {"argmin", KW(py_argmin), "argmin(input, dim=None, keepdim=False): int64 index of the (first) minimum."},
    {"var", KW(py_var), "var(input, dim=None, correction=1, keepdim=False, take_sqrt=False): variance (std)."},
    {"logsumexp", KW(py_logsumexp), "logsumexp(input, dim=None, keepdim=False): log(sum(exp(input))), stable."},
    {"norm", KW(py_norm), "norm(input, p=2.0, dim=None, keepdim=False): vector p-norm over dims."},
    {"cumsum", KW(py_cumsum), "cumsum(input, dim): running sum along dim."},
    {"softmax", KW(py_softmax), "softmax(input, dim): exp(x) / sum(exp(x)) along dim, max-shifted."},
    {"log_softmax", KW(py_log_softmax), "log_softmax(input, dim): x - logsumexp(x) along dim."},
    {NULL, NULL, 0, NULL},
};
