/* Matrix products: matmul (torch.matmul semantics) and linear (x W^T + b). */
#include "hm.h"
#include "broadcast.h"
#include "linalg.h"

/* ------------------------------------------------------------------ matmul */

/* How a matmul call maps onto the batched kernel: operands seen as
 * [*batch, m, k] @ [*batch, k, n]; 1-D operands become [1, k] / [k, 1]. */
typedef struct {
    int nbd;
    int64_t bshape[HM_MAX_DIMS], sa[HM_MAX_DIMS], sb[HM_MAX_DIMS];
    int64_t m, k, n;
    int out_ndim;
    npy_intp out_shape[HM_MAX_DIMS];
} matmul_plan;

static int plan_matmul(matmul_plan *p, PyArrayObject *a, PyArrayObject *b) {
    int na = PyArray_NDIM(a), nb = PyArray_NDIM(b);
    const npy_intp *as = PyArray_DIMS(a), *bs = PyArray_DIMS(b);
    char s1[160], s2[160];
    if (na == 0 || nb == 0) {
        PyErr_Format(PyExc_ValueError,
                     "matmul(): both arguments need at least one dimension, got 'input' of shape %s and 'other' of "
                     "shape %s (use mul for scalars)",
                     hm_shape_str(na, as, s1, sizeof s1), hm_shape_str(nb, bs, s2, sizeof s2));
        return -1;
    }
    int64_t ka = as[na - 1], kb = nb == 1 ? bs[0] : bs[nb - 2];
    if (ka != kb) {
        PyErr_Format(PyExc_ValueError,
                     "matmul(): inner dimensions do not match: 'input' has shape %s (%lld columns) and 'other' has "
                     "shape %s (%lld rows)",
                     hm_shape_str(na, as, s1, sizeof s1), (long long)ka, hm_shape_str(nb, bs, s2, sizeof s2),
                     (long long)kb);
        return -1;
    }
    p->m = na == 1 ? 1 : as[na - 2];
    p->k = ka;
    p->n = nb == 1 ? 1 : bs[nb - 1];
    /* batch dims: everything before the last two (none for 1-D / 2-D) */
    int nba = na > 2 ? na - 2 : 0, nbb = nb > 2 ? nb - 2 : 0;
    int nbd = nba > nbb ? nba : nbb;
    int64_t ash[HM_MAX_DIMS], bsh[HM_MAX_DIMS];
    for (int d = 0; d < nba; d++) ash[d] = as[d];
    for (int d = 0; d < nbb; d++) bsh[d] = bs[d];
    for (int d = 0; d < nbd; d++) {
        int da = d - (nbd - nba), db = d - (nbd - nbb);
        int64_t x = da >= 0 ? ash[da] : 1, y = db >= 0 ? bsh[db] : 1;
        if (x != y && x != 1 && y != 1) {
            PyErr_Format(PyExc_ValueError,
                         "matmul(): batch dimensions of 'input' (shape %s) and 'other' (shape %s) cannot be "
                         "broadcast together (%lld vs %lld)",
                         hm_shape_str(na, as, s1, sizeof s1), hm_shape_str(nb, bs, s2, sizeof s2), (long long)x,
                         (long long)y);
            return -1;
        }
        p->bshape[d] = x == 1 ? y : x;
    }
    p->nbd = nbd;
    hm_broadcast_strides(p->sa, nbd, p->bshape, nba, ash);
    hm_broadcast_strides(p->sb, nbd, p->bshape, nbb, bsh);
    for (int d = 0; d < nbd; d++) {
        p->sa[d] *= p->m * p->k;
        p->sb[d] *= p->k * p->n;
    }
    /* torch's output shape: the batch, then m unless input was 1-D, then n
     * unless other was 1-D */
    int o = 0;
    for (int d = 0; d < nbd; d++) p->out_shape[o++] = p->bshape[d];
    if (na > 1) p->out_shape[o++] = p->m;
    if (nb > 1) p->out_shape[o++] = p->n;
    p->out_ndim = o;
    return 0;
}

static int matmul_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *a = hm_node_saved(node, 0), *b = a ? hm_node_saved(node, 1) : NULL;
    if (!b) return -1;
    matmul_plan p;
    if (plan_matmul(&p, a, b) < 0) return -1;
    PyArrayObject *da = NULL, *db = NULL;
    if (node->inputs[0] && !(da = hm_empty_like(a))) return -1;
    if (node->inputs[1] && !(db = hm_empty_like(b))) { Py_XDECREF(da); return -1; }
    float *scratch = NULL;
    int64_t ns = db ? hm_matmul_backward_scratch(p.nbd, p.bshape, p.sa, p.sb, p.m, p.k, p.n) : 0;
    if (ns > 0 && !(scratch = hm_scratch((size_t)ns * sizeof(float)))) {
        Py_XDECREF(da);
        Py_XDECREF(db);
        return -1;
    }
    hm_matmul_backward(da ? AF32(da) : NULL, db ? AF32(db) : NULL, AF32(g), AF32(a), AF32(b), p.nbd, p.bshape, p.sa,
                       p.sb, p.m, p.k, p.n, scratch);
    hm_scratch_free(scratch);
    gin[0] = da;
    gin[1] = db;
    return 0;
}

static PyObject *py_matmul(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ao, *bo;
    if (!PyArg_UnpackTuple(args, "matmul", 2, 2, &ao, &bo)) return NULL;
    HmTensor *a = hm_as_float_tensor(ao, "matmul", "input");
    if (!a) return NULL;
    HmTensor *b = hm_as_float_tensor(bo, "matmul", "other");
    if (!b) { Py_DECREF(a); return NULL; }
    PyObject *result = NULL;
    matmul_plan p;
    if (plan_matmul(&p, a->arr, b->arr) < 0) goto done;
    PyArrayObject *out = hm_empty(p.out_ndim, p.out_shape, NPY_FLOAT32);
    if (!out) goto done;
    int64_t ns = hm_matmul_forward_scratch(p.nbd, p.bshape, p.sa, p.sb, p.m, p.k, p.n);
    float *scratch = NULL;
    if (ns > 0 && !(scratch = hm_scratch((size_t)ns * sizeof(float)))) { Py_DECREF(out); goto done; }
    hm_matmul_forward(AF32(out), HM_F32(a), HM_F32(b), p.nbd, p.bshape, p.sa, p.sb, p.m, p.k, p.n, scratch);
    hm_scratch_free(scratch);
    PyObject *inputs[2] = {(PyObject *)a, (PyObject *)b};
    HmNode *node = hm_node_new("MmBackward", matmul_backward, inputs, 2);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    /* Both operands are needed whichever gradient is asked for (dA reads B,
     * dB reads A): save them as tensors, version-checked. */
    if (node && (hm_node_save(node, (PyObject *)a) < 0 || hm_node_save(node, (PyObject *)b) < 0)) {
        Py_DECREF(node);
        Py_DECREF(out);
        goto done;
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

/* ------------------------------------------------------------------ linear */

/* rows = product of all but the last dim of x */
static int64_t leading_rows(PyArrayObject *x) {
    int64_t rows = 1;
    for (int d = 0; d < PyArray_NDIM(x) - 1; d++) rows *= PyArray_DIM(x, d);
    return rows;
}

static int linear_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(node, 0), *w = x ? hm_node_saved(node, 1) : NULL;
    if (!w) return -1;
    int64_t rows = leading_rows(x), in_f = PyArray_DIM(w, 1), out_f = PyArray_DIM(w, 0);
    PyArrayObject *dx = NULL, *dw = NULL, *db = NULL;
    if (node->inputs[0] && !(dx = hm_empty_like(x))) goto fail;
    if (node->inputs[1] && !(dw = hm_empty_like(w))) goto fail;
    if (node->inputs[2]) {
        npy_intp bshape[1] = {(npy_intp)out_f};
        if (!(db = hm_empty(1, bshape, NPY_FLOAT32))) goto fail;
    }
    float *scratch = NULL;
    int64_t ns = dw ? hm_linear_backward_scratch(rows, in_f, out_f) : 0;
    if (ns > 0 && !(scratch = hm_scratch((size_t)ns * sizeof(float)))) goto fail;
    hm_linear_backward(dx ? AF32(dx) : NULL, dw ? AF32(dw) : NULL, db ? AF32(db) : NULL, AF32(g), AF32(x), AF32(w),
                       rows, in_f, out_f, scratch);
    hm_scratch_free(scratch);
    gin[0] = dx;
    gin[1] = dw;
    gin[2] = db;
    return 0;
fail:
    Py_XDECREF(dx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return -1;
}

static PyObject *py_linear(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "weight", "bias", NULL};
    PyObject *xo, *wo, *bo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:linear", kwlist, &xo, &wo, &bo)) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, "linear", "input");
    if (!x) return NULL;
    HmTensor *w = hm_as_float_tensor(wo, "linear", "weight");
    if (!w) { Py_DECREF(x); return NULL; }
    HmTensor *b = NULL;
    PyObject *result = NULL;
    char s1[160], s2[160];
    if (bo != Py_None && !(b = hm_as_float_tensor(bo, "linear", "bias"))) goto done;
    if (HM_NDIM(x) < 1) {
        PyErr_SetString(PyExc_ValueError, "linear(): argument 'input' must have at least one dimension (features), "
                                          "got a 0-dimensional tensor");
        goto done;
    }
    int64_t in_f = HM_SHAPE(x)[HM_NDIM(x) - 1];
    if (HM_NDIM(w) != 2 || HM_SHAPE(w)[1] != in_f) {
        PyErr_Format(PyExc_ValueError,
                     "linear(): argument 'weight' has shape %s, expected (out_features, %lld) to match the last "
                     "dimension of 'input' (shape %s)",
                     hm_shape_str(HM_NDIM(w), HM_SHAPE(w), s1, sizeof s1), (long long)in_f,
                     hm_shape_str(HM_NDIM(x), HM_SHAPE(x), s2, sizeof s2));
        goto done;
    }
    int64_t out_f = HM_SHAPE(w)[0];
    if (b && (HM_NDIM(b) != 1 || HM_SHAPE(b)[0] != out_f)) {
        PyErr_Format(PyExc_ValueError, "linear(): argument 'bias' has shape %s, expected (%lld,) (out_features of "
                                       "'weight', shape %s)",
                     hm_shape_str(HM_NDIM(b), HM_SHAPE(b), s1, sizeof s1), (long long)out_f,
                     hm_shape_str(HM_NDIM(w), HM_SHAPE(w), s2, sizeof s2));
        goto done;
    }
    npy_intp oshape[HM_MAX_DIMS];
    int nd = HM_NDIM(x);
    for (int d = 0; d < nd - 1; d++) oshape[d] = HM_SHAPE(x)[d];
    oshape[nd - 1] = (npy_intp)out_f;
    PyArrayObject *out = hm_empty(nd, oshape, NPY_FLOAT32);
    if (!out) goto done;
    int64_t rows = leading_rows(x->arr);
    const float *bp = b ? HM_F32(b) : NULL;
    float *xp = HM_F32(x), *wp = HM_F32(w);
    hm_linear_forward(AF32(out), xp, wp, bp, rows, in_f, out_f);
    PyObject *inputs[3] = {(PyObject *)x, (PyObject *)w, (PyObject *)b};
    HmNode *node = hm_node_new("LinearBackward", linear_backward, inputs, 3);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node && (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)w) < 0)) {
        Py_DECREF(node);
        Py_DECREF(out);
        goto done;
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    Py_DECREF(w);
    Py_XDECREF(b);
    return result;
}

PyMethodDef hm_methods_linalg[] = {
    {"matmul", py_matmul, METH_VARARGS,
     "matmul(input, other): matrix product with torch.matmul's rules (1-D, 2-D, batched with broadcasting)."},
    {"linear", (PyCFunction)(void (*)(void))py_linear, METH_VARARGS | METH_KEYWORDS,
     "linear(input, weight, bias=None): input @ weight^T + bias."},
    {NULL, NULL, 0, NULL},
};
