/* Neural-network ops: layer_norm, activations (relu, leaky_relu, elu, selu,
 * gelu, softplus, silu) and dropout. */
#include "hm.h"
#include "nn.h"
#include "rng.h"
#include <stdio.h>
#include <string.h>

/* --------------------------------------------------------------- layer_norm */

/* saved: 0 input (tensor), 1 mean, 2 rstd (arrays), 3 weight (tensor, if any) */
static int layer_norm_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(node, 0);
    PyArrayObject *mean = x ? hm_node_saved(node, 1) : NULL;
    PyArrayObject *rstd = mean ? hm_node_saved(node, 2) : NULL;
    if (!rstd) return -1;
    PyArrayObject *w = NULL;
    if (node->i[0] && !(w = hm_node_saved(node, 3))) return -1;
    int64_t rows = node->i[1], cols = node->i[2];
    int pnd = (int)node->i[3];
    npy_intp pshape[HM_MAX_DIMS];
    for (int d = 0; d < pnd; d++) pshape[d] = PyArray_DIM(x, PyArray_NDIM(x) - pnd + d);
    PyArrayObject *dx = NULL, *dw = NULL, *db = NULL;
    if (node->inputs[0] && !(dx = hm_empty_like(x))) goto fail;
    if (node->inputs[1] && !(dw = hm_empty(pnd, pshape, NPY_FLOAT32))) goto fail;
    if (node->inputs[2] && !(db = hm_empty(pnd, pshape, NPY_FLOAT32))) goto fail;
    hm_layernorm_backward(dx ? AF32(dx) : NULL, dw ? AF32(dw) : NULL, db ? AF32(db) : NULL, AF32(g), AF32(x),
                          w ? AF32(w) : NULL, AF32(mean), AF32(rstd), rows, cols);
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

static int same_shape(int na, const npy_intp *a, int nb, const npy_intp *b) {
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

static PyObject *py_layer_norm(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "normalized_shape", "weight", "bias", "eps", NULL};
    PyObject *xo, *nso, *wo = Py_None, *bo = Py_None;
    double eps = 1e-5;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOd:layer_norm", kwlist, &xo, &nso, &wo, &bo, &eps)) return NULL;
    int pnd;
    npy_intp pshape[HM_MAX_DIMS];
    if (hm_parse_shape(nso, "layer_norm", &pnd, pshape) < 0) return NULL;
    if (!(eps >= 0.0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", eps);
        PyErr_Format(PyExc_ValueError, "layer_norm(): eps must be non-negative, got %s", buf);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "layer_norm", "input");
    if (!x) return NULL;
    HmTensor *w = NULL, *b = NULL;
    PyObject *result = NULL;
    PyArrayObject *out = NULL, *mean = NULL, *rstd = NULL;
    char s1[160], s2[160];
    if (wo != Py_None && !(w = hm_as_float_tensor(wo, "layer_norm", "weight"))) goto done;
    if (bo != Py_None && !(b = hm_as_float_tensor(bo, "layer_norm", "bias"))) goto done;
    int nd = HM_NDIM(x);
    if (pnd == 0 || pnd > nd || !same_shape(pnd, pshape, pnd, HM_SHAPE(x) + nd - pnd)) {
        PyErr_Format(PyExc_ValueError,
                     "layer_norm(): normalized_shape %s must be non-empty and equal the last dimensions of 'input' "
                     "(shape %s)",
                     hm_shape_str(pnd, pshape, s1, sizeof s1), hm_shape_str(nd, HM_SHAPE(x), s2, sizeof s2));
        goto done;
    }
    HmTensor *params[2] = {w, b};
    const char *pnames[2] = {"weight", "bias"};
    for (int k = 0; k < 2; k++) {
        if (params[k] && !same_shape(HM_NDIM(params[k]), HM_SHAPE(params[k]), pnd, pshape)) {
            PyErr_Format(PyExc_ValueError, "layer_norm(): argument '%s' has shape %s, expected normalized_shape %s",
                         pnames[k], hm_shape_str(HM_NDIM(params[k]), HM_SHAPE(params[k]), s1, sizeof s1),
                         hm_shape_str(pnd, pshape, s2, sizeof s2));
            goto done;
        }
    }
    int64_t cols = 1, rows = 1;
    for (int d = 0; d < pnd; d++) cols *= pshape[d];
    for (int d = 0; d < nd - pnd; d++) rows *= HM_SHAPE(x)[d];
    npy_intp rdim = (npy_intp)rows;
    if (!(out = hm_empty(nd, HM_SHAPE(x), NPY_FLOAT32))) goto done;
    if (!(mean = hm_empty(1, &rdim, NPY_FLOAT32)) || !(rstd = hm_empty(1, &rdim, NPY_FLOAT32))) goto done;
    hm_layernorm_forward(AF32(out), AF32(mean), AF32(rstd), HM_F32(x), w ? HM_F32(w) : NULL, b ? HM_F32(b) : NULL,
                         rows, cols, (float)eps);
    PyObject *inputs[3] = {(PyObject *)x, (PyObject *)w, (PyObject *)b};
    HmNode *node = hm_node_new("NativeLayerNormBackward", layer_norm_backward, inputs, 3);
    if (!node && PyErr_Occurred()) goto done;
    if (node) {
        node->i[0] = w != NULL;
        node->i[1] = rows;
        node->i[2] = cols;
        node->i[3] = pnd;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)mean) < 0 ||
            hm_node_save(node, (PyObject *)rstd) < 0 || (w && hm_node_save(node, (PyObject *)w) < 0)) {
            Py_DECREF(node);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
    out = NULL;
done:
    Py_XDECREF(out);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    Py_DECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return result;
}

/* -------------------------------------------------------------- activations */

enum { ACT_RELU, ACT_LEAKY, ACT_ELU, ACT_GELU, ACT_SOFTPLUS, ACT_SILU };

/* params in node->f: leaky (slope), elu/selu (alpha, scale), gelu
 * (approximate), softplus (beta, threshold). saved[0]: the input tensor, or
 * for relu the output array (torch's relu backward reads the result). */
static int activation_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *s = hm_node_saved(node, 0);
    if (!s) return -1;
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    int64_t n = PyArray_SIZE(g);
    float p0 = (float)node->f[0], p1 = (float)node->f[1];
    switch (node->i[0]) {
    case ACT_RELU: hm_relu_backward(AF32(dx), AF32(g), AF32(s), n); break;
    case ACT_LEAKY: hm_leaky_relu_backward(AF32(dx), AF32(g), AF32(s), n, p0); break;
    case ACT_ELU: hm_elu_backward(AF32(dx), AF32(g), AF32(s), n, p0, p1); break;
    case ACT_GELU: hm_gelu_backward(AF32(dx), AF32(g), AF32(s), n, (int)p0); break;
    case ACT_SOFTPLUS: hm_softplus_backward(AF32(dx), AF32(g), AF32(s), n, p0, p1); break;
    default: hm_silu_backward(AF32(dx), AF32(g), AF32(s), n); break;
    }
    gin[0] = dx;
    return 0;
}

static PyObject *activation(PyObject *xo, int kind, float p0, float p1, const char *name, const char *bname) {
    HmTensor *x = hm_as_float_tensor(xo, name, "input");
    if (!x) return NULL;
    PyArrayObject *out = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32);
    if (!out) { Py_DECREF(x); return NULL; }
    float *o = AF32(out), *xp = HM_F32(x);
    int64_t n = HM_NUMEL(x);
    switch (kind) {
    case ACT_RELU: hm_relu_forward(o, xp, n); break;
    case ACT_LEAKY: hm_leaky_relu_forward(o, xp, n, p0); break;
    case ACT_ELU: hm_elu_forward(o, xp, n, p0, p1); break;
    case ACT_GELU: hm_gelu_forward(o, xp, n, (int)p0); break;
    case ACT_SOFTPLUS: hm_softplus_forward(o, xp, n, p0, p1); break;
    default: hm_silu_forward(o, xp, n); break;
    }
    PyObject *inputs[1] = {(PyObject *)x};
    HmNode *node = hm_node_new(bname, activation_backward, inputs, 1);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); Py_DECREF(x); return NULL; }
    if (node) {
        node->i[0] = kind;
        node->f[0] = p0;
        node->f[1] = p1;
        if (hm_node_save(node, kind == ACT_RELU ? (PyObject *)out : (PyObject *)x) < 0) {
            Py_DECREF(node);
            Py_DECREF(out);
            Py_DECREF(x);
            return NULL;
        }
    }
    Py_DECREF(x);
    return hm_wrap_with_node(out, (PyObject *)node);
}

static PyObject *py_relu(PyObject *self, PyObject *arg) {
    (void)self;
    return activation(arg, ACT_RELU, 0, 0, "relu", "ReluBackward");
}

static PyObject *py_silu(PyObject *self, PyObject *arg) {
    (void)self;
    return activation(arg, ACT_SILU, 0, 0, "silu", "SiluBackward");
}

static PyObject *py_selu(PyObject *self, PyObject *arg) {
    (void)self;
    return activation(arg, ACT_ELU, HM_SELU_ALPHA, HM_SELU_SCALE, "selu", "SeluBackward");
}

static PyObject *py_leaky_relu(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "negative_slope", NULL};
    PyObject *x;
    double slope = 0.01;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|d:leaky_relu", kwlist, &x, &slope)) return NULL;
    return activation(x, ACT_LEAKY, (float)slope, 0, "leaky_relu", "LeakyReluBackward");
}

static PyObject *py_elu(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "alpha", NULL};
    PyObject *x;
    double alpha = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|d:elu", kwlist, &x, &alpha)) return NULL;
    return activation(x, ACT_ELU, (float)alpha, 1.0f, "elu", "EluBackward");
}

static PyObject *py_gelu(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "approximate", NULL};
    PyObject *x;
    const char *approx = "none";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s:gelu", kwlist, &x, &approx)) return NULL;
    int tanh_form;
    if (strcmp(approx, "none") == 0) tanh_form = 0;
    else if (strcmp(approx, "tanh") == 0) tanh_form = 1;
    else {
        PyErr_Format(PyExc_ValueError, "gelu(): approximate must be 'none' or 'tanh', got '%s'", approx);
        return NULL;
    }
    return activation(x, ACT_GELU, (float)tanh_form, 0, "gelu", "GeluBackward");
}

static PyObject *py_softplus(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "beta", "threshold", NULL};
    PyObject *x;
    double beta = 1.0, threshold = 20.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dd:softplus", kwlist, &x, &beta, &threshold)) return NULL;
    if (beta == 0.0) {
        PyErr_SetString(PyExc_ValueError, "softplus(): beta must be non-zero, got 0.0");
        return NULL;
    }
    return activation(x, ACT_SOFTPLUS, (float)beta, (float)threshold, "softplus", "SoftplusBackward");
}

/* ------------------------------------------------------------------ dropout */

static int dropout_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *mask = hm_node_saved(node, 0);
    if (!mask) return -1;
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    hm_dropout_apply(AF32(dx), AF32(g), AF32(mask), PyArray_SIZE(g));
    gin[0] = dx;
    return 0;
}

static PyObject *py_dropout(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "p", "training", NULL};
    PyObject *xo;
    double p = 0.5;
    int training = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dp:dropout", kwlist, &xo, &p, &training)) return NULL;
    if (!(p >= 0.0 && p < 1.0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", p);
        PyErr_Format(PyExc_ValueError, "dropout(): p must be in [0, 1) (the probability of zeroing an element), "
                                       "got %s", buf);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "dropout", "input");
    if (!x) return NULL;
    if (!training || p == 0.0) return (PyObject *)x; /* identity: the input itself, as torch */
    int64_t n = HM_NUMEL(x);
    PyArrayObject *mask = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32);
    PyArrayObject *out = mask ? hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32) : NULL;
    if (!out) { Py_XDECREF(mask); Py_DECREF(x); return NULL; }
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    hm_rand_dropout_mask(AF32(mask), n, seed, offset, (float)p);
    hm_dropout_apply(AF32(out), HM_F32(x), AF32(mask), n);
    PyObject *inputs[1] = {(PyObject *)x};
    HmNode *node = hm_node_new("DropoutBackward", dropout_backward, inputs, 1);
    if (!node && PyErr_Occurred()) goto fail;
    /* Saving the mask (4 bytes per element) rather than regenerating it keeps
     * the backward pass a single streaming multiply. */
    if (node && hm_node_save(node, (PyObject *)mask) < 0) { Py_DECREF(node); goto fail; }
    Py_DECREF(mask);
    Py_DECREF(x);
    return hm_wrap_with_node(out, (PyObject *)node);
fail:
    Py_DECREF(mask);
    Py_DECREF(out);
    Py_DECREF(x);
    return NULL;
}

#define KW (PyCFunction)(void (*)(void))
PyMethodDef hm_methods_nn[] = {
    {"layer_norm", KW py_layer_norm, METH_VARARGS | METH_KEYWORDS,
     "layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5)"},
    {"relu", py_relu, METH_O, "relu(input)"},
    {"silu", py_silu, METH_O, "silu(input)"},
    {"selu", py_selu, METH_O, "selu(input)"},
    {"leaky_relu", KW py_leaky_relu, METH_VARARGS | METH_KEYWORDS, "leaky_relu(input, negative_slope=0.01)"},
    {"elu", KW py_elu, METH_VARARGS | METH_KEYWORDS, "elu(input, alpha=1.0)"},
    {"gelu", KW py_gelu, METH_VARARGS | METH_KEYWORDS, "gelu(input, approximate='none')"},
    {"softplus", KW py_softplus, METH_VARARGS | METH_KEYWORDS, "softplus(input, beta=1.0, threshold=20.0)"},
    {"dropout", KW py_dropout, METH_VARARGS | METH_KEYWORDS, "dropout(input, p=0.5, training=True)"},
    {NULL, NULL, 0, NULL},
};
#undef KW
