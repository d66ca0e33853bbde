/* Normalizing-flow bindings (hepml.flows): the monotonic affine and
 * rational-quadratic spline transforms (forward and inverse, both
 * differentiable), the circular shift, the masked linear layer of a MADE, MADE
 * mask construction and the all-in-C autoregressive inversion used for sampling.
 *
 * The element-wise transforms return ONE tensor of shape [2, *x.shape]:
 * index 0 is the transformed value, index 1 the per-element log |det J| of the
 * direction computed. One node then carries both outputs (the autograd layer
 * has one output per node) and the backward kernels get (dy, dladj) as the two
 * contiguous halves of the upstream gradient. */
#include "hm.h"
#include "flows.h"
#include <string.h>

static int check_params(HmTensor *x, HmTensor *p, int64_t per, const char *op) {
    char b1[128], b2[128];
    int ok = HM_NDIM(p) == HM_NDIM(x) + 1 && PyArray_DIM(HM_ARR(p), HM_NDIM(x)) == per;
    for (int d = 0; ok && d < HM_NDIM(x); d++) ok = HM_SHAPE(p)[d] == HM_SHAPE(x)[d];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'params' has shape %s, expected %s + (%lld,) "
                     "(the shape of 'x' plus the %lld raw parameters per value)", op,
                     hm_shape_str(HM_NDIM(p), HM_SHAPE(p), b1, sizeof b1),
                     hm_shape_str(HM_NDIM(x), HM_SHAPE(x), b2, sizeof b2), (long long)per, (long long)per);
        return -1;
    }
    return 0;
}

/* node->i: [0] kind (0 affine, 1 rqs), [1] inverse, [2] bins, [3] circular;
 * node->f: [0] bound, [1] slope. Saved: input tensor, params tensor. */
static int univariate_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *p = x ? hm_node_saved(n, 1) : NULL;
    if (!p) return -1;
    int64_t cnt = (int64_t)PyArray_SIZE(x);
    PyArrayObject *dx = NULL, *dp = NULL;
    if (n->inputs[0] && !(dx = hm_empty_like(x))) return -1;
    if (n->inputs[1] && !(dp = hm_empty_like(p))) { Py_XDECREF(dx); return -1; }
    const float *dy = AF32(g), *dl = AF32(g) + cnt;
    float *dxp = dx ? AF32(dx) : NULL, *dpp = dp ? AF32(dp) : NULL;
    float slope = (float)n->f[1];
    if (n->i[0] == 0) {
        if (n->i[1])
            hm_monotonic_affine_inverse_backward(dxp, dpp, dpp ? dpp + 1 : NULL, dy, dl, AF32(x), AF32(p),
                                                 AF32(p) + 1, cnt, 2, slope);
        else
            hm_monotonic_affine_backward(dxp, dpp, dpp ? dpp + 1 : NULL, dy, dl, AF32(x), AF32(p), AF32(p) + 1,
                                         cnt, 2, slope);
    } else {
        int rc = n->i[1] ? hm_rqs_inverse_backward(dxp, dpp, dy, dl, AF32(x), AF32(p), cnt, n->i[2],
                                                   (float)n->f[0], slope, (int)n->i[3])
                         : hm_rqs_backward(dxp, dpp, dy, dl, AF32(x), AF32(p), cnt, n->i[2], (float)n->f[0],
                                           slope, (int)n->i[3]);
        if (rc < 0) {
            Py_XDECREF(dx); Py_XDECREF(dp);
            PyErr_SetString(PyExc_RuntimeError, "flows: spline backward failed (invalid bins)");
            return -1;
        }
    }
    gin[0] = dx;
    gin[1] = dp;
    return 0;
}

static PyObject *univariate(PyObject *xo, PyObject *po, int kind, int inverse, int64_t bins, double bound,
                            double slope, int circular, const char *op) {
    if (!(slope > 0.0 && slope < 1.0)) {
        PyErr_Format(PyExc_ValueError, "%s(): slope must be in (0, 1), got %g", op, slope);
        return NULL;
    }
    if (kind == 1 && (bins < 1 || bins > HM_RQS_MAX_BINS || !(bound > 0.0))) {
        PyErr_Format(PyExc_ValueError, "%s(): bins must be in [1, %d] and bound > 0, got bins=%lld bound=%g", op,
                     HM_RQS_MAX_BINS, (long long)bins, bound);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, op, "x");
    if (!x) return NULL;
    HmTensor *p = hm_as_float_tensor(po, op, "params");
    if (!p) { Py_DECREF(x); return NULL; }
    PyObject *res = NULL;
    int64_t per = kind == 0 ? 2 : 3 * bins - 1;
    if (HM_NDIM(x) + 1 > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s(): 'x' has too many dims (%d)", op, HM_NDIM(x));
        goto done;
    }
    if (check_params(x, p, per, op) < 0) goto done;
    npy_intp shape[HM_MAX_DIMS];
    shape[0] = 2;
    for (int d = 0; d < HM_NDIM(x); d++) shape[d + 1] = HM_SHAPE(x)[d];
    PyArrayObject *out = hm_empty(HM_NDIM(x) + 1, shape, NPY_FLOAT32);
    if (!out) goto done;
    int64_t n = HM_NUMEL(x);
    float *y = AF32(out), *l = AF32(out) + n;
    if (kind == 0) {
        if (inverse) hm_monotonic_affine_inverse(y, l, HM_F32(x), HM_F32(p), HM_F32(p) + 1, n, 2, (float)slope);
        else hm_monotonic_affine_forward(y, l, HM_F32(x), HM_F32(p), HM_F32(p) + 1, n, 2, (float)slope);
    } else {
        int rc = inverse ? hm_rqs_inverse(y, l, HM_F32(x), HM_F32(p), n, bins, (float)bound, (float)slope, circular)
                         : hm_rqs_forward(y, l, HM_F32(x), HM_F32(p), n, bins, (float)bound, (float)slope, circular);
        if (rc < 0) {
            Py_DECREF(out);
            PyErr_Format(PyExc_ValueError, "%s(): invalid spline arguments", op);
            goto done;
        }
    }
    PyObject *inputs[2] = {(PyObject *)x, (PyObject *)p};
    static const char *names[2][2] = {{"MonotonicAffineBackward", "MonotonicAffineInverseBackward"},
                                      {"RQSBackward", "RQSInverseBackward"}};
    HmNode *node = hm_node_new(names[kind][inverse], univariate_backward, inputs, 2);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = kind; node->i[1] = inverse; node->i[2] = bins; node->i[3] = circular;
        node->f[0] = bound; node->f[1] = slope;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)p) < 0) {
            Py_DECREF(node); Py_DECREF(out); goto done;
        }
    }
    res = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    Py_DECREF(p);
    return res;
}

static PyObject *py_flow_affine(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"x", "params", "slope", "inverse", NULL};
    PyObject *xo, *po;
    double slope = 1e-3;
    int inverse = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|dp:flow_affine", kwlist, &xo, &po, &slope, &inverse))
        return NULL;
    return univariate(xo, po, 0, inverse, 0, 1.0, slope, 0, "flow_affine");
}

static PyObject *py_flow_rqs(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"x", "params", "bins", "bound", "slope", "circular", "inverse", NULL};
    PyObject *xo, *po;
    long long bins;
    double bound = 5.0, slope = 1e-3;
    int circular = 0, inverse = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOL|ddpp:flow_rqs", kwlist, &xo, &po, &bins, &bound, &slope,
                                     &circular, &inverse))
        return NULL;
    return univariate(xo, po, 1, inverse, bins, bound, slope, circular, "flow_rqs");
}

/* ------------------------------------------------------------ circular shift */

static int shift_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    (void)n;
    Py_INCREF(g); /* derivative 1 everywhere (the jumps are measure zero) */
    gin[0] = g;
    return 0;
}

static PyObject *py_flow_circular_shift(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"x", "bound", "inverse", NULL};
    PyObject *xo;
    double bound = 1.0;
    int inverse = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dp:flow_circular_shift", kwlist, &xo, &bound, &inverse))
        return NULL;
    if (!(bound > 0)) {
        PyErr_Format(PyExc_ValueError, "flow_circular_shift(): bound must be > 0, got %g", bound);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "flow_circular_shift", "x");
    if (!x) return NULL;
    PyArrayObject *out = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32);
    if (!out) { Py_DECREF(x); return NULL; }
    if (inverse) hm_circular_shift_inverse(AF32(out), HM_F32(x), HM_NUMEL(x), (float)bound);
    else hm_circular_shift_forward(AF32(out), HM_F32(x), HM_NUMEL(x), (float)bound);
    PyObject *inputs[1] = {(PyObject *)x};
    HmNode *node = hm_node_new("CircularShiftBackward", shift_backward, inputs, 1);
    Py_DECREF(x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    return hm_wrap_with_node(out, (PyObject *)node);
}

/* ------------------------------------------------------------- masked linear */

static int check_mask(HmTensor *m, int64_t rows, int64_t cols, const char *op, const char *arg) {
    char b[128];
    if (HM_DTYPE(m) != NPY_BOOL || HM_NDIM(m) != 2 || HM_SHAPE(m)[0] != rows || HM_SHAPE(m)[1] != cols) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be a bool tensor of shape (%lld, %lld), got %s %s",
                     op, arg, (long long)rows, (long long)cols, PyArray_DESCR(HM_ARR(m))->kind == 'b' ? "bool" : "non-bool",
                     hm_shape_str(HM_NDIM(m), HM_SHAPE(m), b, sizeof b));
        return -1;
    }
    return 0;
}

/* Saved: x, weight, mask. i[0] = in, i[1] = out. */
static int masked_linear_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(n, 0), *w = x ? hm_node_saved(n, 1) : NULL, *m = w ? hm_node_saved(n, 2) : NULL;
    if (!m) return -1;
    int64_t in = n->i[0], out = n->i[1], rows = in ? (int64_t)PyArray_SIZE(x) / in : 0;
    PyArrayObject *dx = NULL, *dw = NULL, *db = NULL;
    if (n->inputs[0] && !(dx = hm_empty_like(x))) goto fail;
    if (n->inputs[1] && !(dw = hm_empty_like(w))) goto fail;
    if (n->inputs[2]) {
        npy_intp s[1] = {out};
        if (!(db = hm_empty(1, s, NPY_FLOAT32))) goto fail;
    }
    float *scratch = hm_scratch((size_t)(in * out + 1) * sizeof(float));
    if (!scratch) goto fail;
    hm_masked_linear_backward(dx ? AF32(dx) : NULL, dw ? AF32(dw) : NULL, db ? AF32(db) : NULL, scratch, AF32(g),
                              AF32(x), AF32(w), (const uint8_t *)PyArray_DATA(m), rows, in, out);
    hm_scratch_free(scratch);
    gin[0] = dx; gin[1] = dw; gin[2] = db;
    return 0;
fail:
    Py_XDECREF(dx); Py_XDECREF(dw); Py_XDECREF(db);
    return -1;
}

static PyObject *py_masked_linear(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "weight", "mask", "bias", NULL};
    PyObject *xo, *wo, *mo, *bo = Py_None;
    const char *op = "masked_linear";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|O:masked_linear", kwlist, &xo, &wo, &mo, &bo)) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, op, "input"), *w = NULL, *m = NULL, *b = NULL;
    PyObject *res = NULL;
    char b1[128], b2[128];
    if (!x || !(w = hm_as_float_tensor(wo, op, "weight")) || !(m = hm_as_tensor(mo, op, "mask"))) goto done;
    if (bo != Py_None && !(b = hm_as_float_tensor(bo, op, "bias"))) goto done;
    if (HM_NDIM(w) != 2) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'weight' has shape %s, expected (out, in)", op,
                     hm_shape_str(HM_NDIM(w), HM_SHAPE(w), b1, sizeof b1));
        goto done;
    }
    int64_t out = HM_SHAPE(w)[0], in = HM_SHAPE(w)[1];
    if (HM_NDIM(x) < 1 || HM_SHAPE(x)[HM_NDIM(x) - 1] != in) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'input' has shape %s, expected (..., %lld) to match 'weight' %s",
                     op, hm_shape_str(HM_NDIM(x), HM_SHAPE(x), b1, sizeof b1), (long long)in,
                     hm_shape_str(HM_NDIM(w), HM_SHAPE(w), b2, sizeof b2));
        goto done;
    }
    if (check_mask(m, out, in, op, "mask") < 0) goto done;
    if (b && (HM_NDIM(b) != 1 || HM_SHAPE(b)[0] != out)) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'bias' has shape %s, expected (%lld,)", op,
                     hm_shape_str(HM_NDIM(b), HM_SHAPE(b), b1, sizeof b1), (long long)out);
        goto done;
    }
    npy_intp shape[HM_MAX_DIMS];
    for (int d = 0; d < HM_NDIM(x); d++) shape[d] = HM_SHAPE(x)[d];
    shape[HM_NDIM(x) - 1] = out;
    PyArrayObject *o = hm_empty(HM_NDIM(x), shape, NPY_FLOAT32);
    if (!o) goto done;
    int64_t rows = in ? HM_NUMEL(x) / in : 0;
    float *scratch = hm_scratch((size_t)(in * out + 1) * sizeof(float));
    if (!scratch) { Py_DECREF(o); goto done; }
    hm_masked_linear_forward(AF32(o), scratch, HM_F32(x), HM_F32(w), (const uint8_t *)PyArray_DATA(HM_ARR(m)),
                             b ? HM_F32(b) : NULL, rows, in, out);
    hm_scratch_free(scratch);
    PyObject *inputs[3] = {(PyObject *)x, (PyObject *)w, (PyObject *)b};
    HmNode *node = hm_node_new("MaskedLinearBackward", masked_linear_backward, inputs, 3);
    if (!node && PyErr_Occurred()) { Py_DECREF(o); goto done; }
    if (node) {
        node->i[0] = in; node->i[1] = out;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)w) < 0 ||
            hm_node_save(node, (PyObject *)m) < 0) {
            Py_DECREF(node); Py_DECREF(o); goto done;
        }
    }
    res = hm_wrap_with_node(o, (PyObject *)node);
done:
    Py_XDECREF(x); Py_XDECREF(w); Py_XDECREF(m); Py_XDECREF(b);
    return res;
}

/* --------------------------------------------------------------- MADE masks */

static int parse_int_seq(PyObject *o, int64_t *v, int64_t maxn, int64_t *n, const char *op, const char *arg) {
    PyObject *seq = PySequence_Fast(o, "");
    if (!seq) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a sequence of ints", op, arg);
        return -1;
    }
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    if (k > maxn) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has %zd entries, at most %lld allowed", op, arg, k,
                     (long long)maxn);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        long long x = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (x == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (x < 1) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "%s(): argument '%s' entries must be >= 1, got %lld", op, arg, x);
            return -1;
        }
        v[i] = x;
    }
    *n = k;
    Py_DECREF(seq);
    return 0;
}

static PyObject *py_made_masks(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ao, *ho;
    const char *op = "made_masks";
    if (!PyArg_ParseTuple(args, "OO:made_masks", &ao, &ho)) return NULL;
    HmTensor *a = hm_as_tensor(ao, op, "adjacency");
    if (!a) return NULL;
    char b1[128];
    if (HM_DTYPE(a) != NPY_BOOL || HM_NDIM(a) != 2) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'adjacency' must be a 2-D bool tensor, got shape %s", op,
                     hm_shape_str(HM_NDIM(a), HM_SHAPE(a), b1, sizeof b1));
        Py_DECREF(a);
        return NULL;
    }
    int64_t hidden[64], nh;
    if (parse_int_seq(ho, hidden, 64, &nh, op, "hidden_features") < 0) { Py_DECREF(a); return NULL; }
    int64_t out = HM_SHAPE(a)[0], in = HM_SHAPE(a)[1];
    int64_t total = hm_made_masks_size(out, in, hidden, nh);
    uint8_t *buf = PyMem_Malloc((size_t)total + 1);
    if (!buf) { Py_DECREF(a); return PyErr_NoMemory(); }
    int rc = hm_made_masks(buf, (const uint8_t *)PyArray_DATA(HM_ARR(a)), out, in, hidden, nh);
    Py_DECREF(a);
    if (rc == -1) {
        PyMem_Free(buf);
        PyErr_SetString(PyExc_ValueError, "made_masks(): the adjacency matrix leads to a null Jacobian");
        return NULL;
    }
    if (rc < 0) { PyMem_Free(buf); return PyErr_NoMemory(); }
    PyObject *tuple = PyTuple_New(nh + 1);
    if (!tuple) { PyMem_Free(buf); return NULL; }
    int64_t off = 0, prev = in;
    for (int64_t l = 0; l <= nh; l++) {
        int64_t rows = l < nh ? hidden[l] : out;
        npy_intp s[2] = {rows, prev};
        PyArrayObject *m = hm_empty(2, s, NPY_BOOL);
        if (!m) { Py_DECREF(tuple); PyMem_Free(buf); return NULL; }
        memcpy(PyArray_DATA(m), buf + off, (size_t)(rows * prev));
        off += rows * prev;
        prev = rows;
        PyObject *t = hm_wrap(m);
        if (!t) { Py_DECREF(tuple); PyMem_Free(buf); return NULL; }
        PyTuple_SET_ITEM(tuple, l, t);
    }
    PyMem_Free(buf);
    return tuple;
}

static PyObject *py_maf_adjacency(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo;
    long long context, total;
    if (!PyArg_ParseTuple(args, "OLL:maf_adjacency", &oo, &context, &total)) return NULL;
    HmTensor *o = hm_as_tensor(oo, "maf_adjacency", "order");
    if (!o) return NULL;
    if (HM_DTYPE(o) != NPY_INT64 || HM_NDIM(o) != 1 || context < 0 || total < 1) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_ValueError, "maf_adjacency(): 'order' must be a 1-D int64 tensor, context >= 0, total >= 1");
        return NULL;
    }
    int64_t f = HM_SHAPE(o)[0];
    npy_intp s[2] = {f * total, f + context};
    PyArrayObject *adj = hm_empty(2, s, NPY_BOOL);
    if (!adj) { Py_DECREF(o); return NULL; }
    hm_maf_adjacency((uint8_t *)PyArray_DATA(adj), (const int64_t *)PyArray_DATA(HM_ARR(o)), f, context, total);
    Py_DECREF(o);
    return hm_wrap(adj);
}

/* ---------------------------------------------------------- MAF inversion */

/* maf_inverse(z, context, weights, masks, biases, activation, order, passes,
 * kind, bins, bound, slope) -> (x, ladj). Not differentiable (the kernel has
 * no backward); the caller refuses to build graphs through it. */
static PyObject *py_maf_inverse(PyObject *self, PyObject *args) {
    (void)self;
    const char *op = "maf_inverse";
    PyObject *zo, *co, *wl, *ml, *bl, *oo;
    int act, kind;
    long long passes, bins;
    double bound, slope;
    if (!PyArg_ParseTuple(args, "OOOOOiOLiLdd:maf_inverse", &zo, &co, &wl, &ml, &bl, &act, &oo, &passes, &kind,
                          &bins, &bound, &slope))
        return NULL;
    PyObject *res = NULL;
    HmTensor *z = NULL, *c = NULL, *o = NULL;
    HmTensor *ws[16] = {0}, *ms[16] = {0}, *bs[16] = {0};
    float *wm[16] = {0};
    float *scratch = NULL;
    char b1[128];
    Py_ssize_t nl = PySequence_Size(wl);
    if (nl < 1 || nl > 16 || PySequence_Size(ml) != nl || PySequence_Size(bl) != nl) {
        PyErr_Format(PyExc_ValueError, "%s(): weights, masks and biases must be sequences of equal length 1..16", op);
        return NULL;
    }
    if (!(z = hm_as_float_tensor(zo, op, "z"))) goto done;
    if (HM_NDIM(z) != 2) {
        PyErr_Format(PyExc_ValueError, "%s(): 'z' has shape %s, expected (batch, features)", op,
                     hm_shape_str(HM_NDIM(z), HM_SHAPE(z), b1, sizeof b1));
        goto done;
    }
    int64_t batch = HM_SHAPE(z)[0], feat = HM_SHAPE(z)[1], cf = 0;
    if (co != Py_None) {
        if (!(c = hm_as_float_tensor(co, op, "context"))) goto done;
        if (HM_NDIM(c) != 2 || HM_SHAPE(c)[0] != batch) {
            PyErr_Format(PyExc_ValueError, "%s(): 'context' has shape %s, expected (%lld, C)", op,
                         hm_shape_str(HM_NDIM(c), HM_SHAPE(c), b1, sizeof b1), (long long)batch);
            goto done;
        }
        cf = HM_SHAPE(c)[1];
    }
    if (!(o = hm_as_tensor(oo, op, "order"))) goto done;
    if (HM_DTYPE(o) != NPY_INT64 || HM_NDIM(o) != 1 || HM_SHAPE(o)[0] != feat) {
        PyErr_Format(PyExc_ValueError, "%s(): 'order' must be an int64 vector of length %lld", op, (long long)feat);
        goto done;
    }
    hm_made_layer layers[16];
    for (Py_ssize_t l = 0; l < nl; l++) {
        PyObject *wo = PySequence_GetItem(wl, l), *mo = PySequence_GetItem(ml, l), *bo = PySequence_GetItem(bl, l);
        if (wo) ws[l] = hm_as_float_tensor(wo, op, "weights");
        if (mo && ws[l]) ms[l] = hm_as_tensor(mo, op, "masks");
        if (bo && ms[l] && bo != Py_None) bs[l] = hm_as_float_tensor(bo, op, "biases");
        int bad = !ws[l] || !ms[l] || (bo && bo != Py_None && !bs[l]);
        Py_XDECREF(wo); Py_XDECREF(mo); Py_XDECREF(bo);
        if (bad) goto done;
        if (HM_NDIM(ws[l]) != 2) {
            PyErr_Format(PyExc_ValueError, "%s(): weight %zd is not 2-D", op, l);
            goto done;
        }
        int64_t out = HM_SHAPE(ws[l])[0], in = HM_SHAPE(ws[l])[1];
        if (check_mask(ms[l], out, in, op, "masks") < 0) goto done;
        if (bs[l] && (HM_NDIM(bs[l]) != 1 || HM_SHAPE(bs[l])[0] != out)) {
            PyErr_Format(PyExc_ValueError, "%s(): bias %zd has the wrong shape", op, l);
            goto done;
        }
        if (!(wm[l] = hm_scratch((size_t)(out * in + 1) * sizeof(float)))) goto done;
        const float *w = HM_F32(ws[l]);
        const uint8_t *m = (const uint8_t *)PyArray_DATA(HM_ARR(ms[l]));
        for (int64_t k = 0; k < out * in; k++) wm[l][k] = m[k] ? w[k] : 0.0f;
        layers[l].in_features = in;
        layers[l].out_features = out;
        layers[l].weight = wm[l];
        layers[l].bias = bs[l] ? HM_F32(bs[l]) : NULL;
        layers[l].activation = act;
    }
    int64_t total = kind == HM_UNIVARIATE_AFFINE ? 2 : 3 * bins - 1;
    if (layers[0].in_features != feat + cf || layers[nl - 1].out_features != feat * total) {
        PyErr_Format(PyExc_ValueError, "%s(): network maps %lld -> %lld features, expected %lld -> %lld", op,
                     (long long)layers[0].in_features, (long long)layers[nl - 1].out_features,
                     (long long)(feat + cf), (long long)(feat * total));
        goto done;
    }
    int64_t ns = hm_maf_inverse_scratch_floats(layers, (int)nl, batch, feat, cf, kind, bins);
    if (!(scratch = hm_scratch((size_t)(ns + 1) * sizeof(float)))) goto done;
    npy_intp s2[2] = {batch, feat}, s1[1] = {batch};
    PyArrayObject *x = hm_empty(2, s2, NPY_FLOAT32), *ladj = x ? hm_empty(1, s1, NPY_FLOAT32) : NULL;
    if (!ladj) { Py_XDECREF(x); goto done; }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hm_maf_inverse(AF32(x), AF32(ladj), scratch, layers, (int)nl, HM_F32(z), c ? HM_F32(c) : NULL, batch, feat,
                        cf, (const int64_t *)PyArray_DATA(HM_ARR(o)), passes, kind, bins, (float)bound,
                        (float)slope);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        Py_DECREF(x); Py_DECREF(ladj);
        PyErr_Format(PyExc_ValueError, "%s(): inconsistent sizes, order, passes or bins", op);
        goto done;
    }
    PyObject *tx = hm_wrap(x), *tl = tx ? hm_wrap(ladj) : NULL;
    if (!tl) { Py_XDECREF(tx); if (!tx) Py_DECREF(ladj); goto done; }
    res = PyTuple_Pack(2, tx, tl);
    Py_DECREF(tx); Py_DECREF(tl);
done:
    for (int l = 0; l < 16; l++) {
        Py_XDECREF(ws[l]); Py_XDECREF(ms[l]); Py_XDECREF(bs[l]);
        if (wm[l]) hm_scratch_free(wm[l]);
    }
    if (scratch) hm_scratch_free(scratch);
    Py_XDECREF(z); Py_XDECREF(c); Py_XDECREF(o);
    return res;
}

PyMethodDef hm_methods_flows[] = {
    {"flow_affine", (PyCFunction)(void (*)(void))py_flow_affine, METH_VARARGS | METH_KEYWORDS,
     "flow_affine(x, params[..., 2], slope=1e-3, inverse=False) -> [2, *x.shape] (value, ladj)"},
    {"flow_rqs", (PyCFunction)(void (*)(void))py_flow_rqs, METH_VARARGS | METH_KEYWORDS,
     "flow_rqs(x, params[..., 3*bins-1], bins, bound=5, slope=1e-3, circular=False, inverse=False) -> [2, *x.shape]"},
    {"flow_circular_shift", (PyCFunction)(void (*)(void))py_flow_circular_shift, METH_VARARGS | METH_KEYWORDS,
     "flow_circular_shift(x, bound=1, inverse=False)"},
    {"masked_linear", (PyCFunction)(void (*)(void))py_masked_linear, METH_VARARGS | METH_KEYWORDS,
     "masked_linear(input, weight, mask, bias=None) = input (weight * mask)^T + bias"},
    {"made_masks", py_made_masks, METH_VARARGS, "made_masks(adjacency, hidden_features) -> tuple of bool masks"},
    {"maf_adjacency", py_maf_adjacency, METH_VARARGS, "maf_adjacency(order, context, total) -> bool adjacency"},
    {"maf_inverse", py_maf_inverse, METH_VARARGS, "maf_inverse(...) -> (x, ladj), all passes in C (no grad)"},
    {NULL, NULL, 0, NULL}};
