/* Regression losses: mse_loss, l1_loss, huber_loss, smooth_l1_loss. */
#include "hm.h"
#include "losses.h"
#include <stdio.h>
#include <string.h>

static int parse_reduction(const char *s, const char *opname, int *out) {
    if (strcmp(s, "mean") == 0) *out = HM_REDUCTION_MEAN;
    else if (strcmp(s, "sum") == 0) *out = HM_REDUCTION_SUM;
    else if (strcmp(s, "none") == 0) *out = HM_REDUCTION_NONE;
    else {
        PyErr_Format(PyExc_ValueError, "%s(): reduction must be 'mean', 'sum' or 'none', got '%s'", opname, s);
        return -1;
    }
    return 0;
}

static const char *backward_names[] = {"MseLossBackward", "L1LossBackward", "HuberLossBackward",
                                       "SmoothL1LossBackward"};

/* saved: input, target (tensors); i[0] kind, i[1] reduction; f[0] param */
static int loss_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *x = hm_node_saved(node, 0), *t = x ? hm_node_saved(node, 1) : NULL;
    if (!t) return -1;
    PyArrayObject *dx = NULL, *dt = NULL;
    if (node->inputs[0] && !(dx = hm_empty_like(x))) return -1;
    if (node->inputs[1] && !(dt = hm_empty_like(t))) { Py_XDECREF(dx); return -1; }
    hm_loss_backward(dx ? AF32(dx) : NULL, dt ? AF32(dt) : NULL, AF32(g), AF32(x), AF32(t), PyArray_SIZE(x),
                     (int)node->i[0], (float)node->f[0], (int)node->i[1]);
    gin[0] = dx;
    gin[1] = dt;
    return 0;
}

static PyObject *pointwise_loss(PyObject *xo, PyObject *to, const char *reduction, int kind, double param,
                                const char *opname) {
    int red;
    if (parse_reduction(reduction, opname, &red) < 0) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, opname, "input");
    if (!x) return NULL;
    HmTensor *t = hm_as_float_tensor(to, opname, "target");
    if (!t) { Py_DECREF(x); return NULL; }
    PyObject *result = NULL;
    if (!PyArray_SAMESHAPE(x->arr, t->arr)) {
        char s1[160], s2[160];
        PyErr_Format(PyExc_ValueError,
                     "%s(): 'input' has shape %s but 'target' has shape %s; hepml requires equal shapes (torch "
                     "would broadcast them with a warning, which is almost always a bug)",
                     opname, hm_shape_str(HM_NDIM(x), HM_SHAPE(x), s1, sizeof s1),
                     hm_shape_str(HM_NDIM(t), HM_SHAPE(t), s2, sizeof s2));
        goto done;
    }
    int64_t n = HM_NUMEL(x);
    PyArrayObject *out = red == HM_REDUCTION_NONE ? hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32)
                                                  : hm_empty(0, NULL, NPY_FLOAT32);
    if (!out) goto done;
    double *partials = NULL;
    if (red != HM_REDUCTION_NONE) {
        partials = hm_scratch((size_t)hm_loss_partials(n) * sizeof(double));
        if (!partials) { Py_DECREF(out); goto done; }
    }
    hm_loss_forward(AF32(out), partials, HM_F32(x), HM_F32(t), n, kind, (float)param, red);
    if (partials) hm_scratch_free(partials);
    PyObject *inputs[2] = {(PyObject *)x, (PyObject *)t};
    HmNode *node = hm_node_new(backward_names[kind], loss_backward, inputs, 2);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = kind;
        node->i[1] = red;
        node->f[0] = param;
        if (hm_node_save(node, (PyObject *)x) < 0 || hm_node_save(node, (PyObject *)t) < 0) {
            Py_DECREF(node);
            Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    Py_DECREF(t);
    return result;
}

static PyObject *py_mse_loss(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "target", "reduction", NULL};
    PyObject *x, *t;
    const char *red = "mean";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|s:mse_loss", kwlist, &x, &t, &red)) return NULL;
    return pointwise_loss(x, t, red, HM_LOSS_MSE, 0.0, "mse_loss");
}

static PyObject *py_l1_loss(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "target", "reduction", NULL};
    PyObject *x, *t;
    const char *red = "mean";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|s:l1_loss", kwlist, &x, &t, &red)) return NULL;
    return pointwise_loss(x, t, red, HM_LOSS_L1, 0.0, "l1_loss");
}

static PyObject *py_huber_loss(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "target", "reduction", "delta", NULL};
    PyObject *x, *t;
    const char *red = "mean";
    double delta = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sd:huber_loss", kwlist, &x, &t, &red, &delta)) return NULL;
    if (!(delta > 0.0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", delta);
        PyErr_Format(PyExc_ValueError, "huber_loss(): delta must be positive, got %s", buf);
        return NULL;
    }
    return pointwise_loss(x, t, red, HM_LOSS_HUBER, delta, "huber_loss");
}

static PyObject *py_smooth_l1_loss(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "target", "reduction", "beta", NULL};
    PyObject *x, *t;
    const char *red = "mean";
    double beta = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sd:smooth_l1_loss", kwlist, &x, &t, &red, &beta)) return NULL;
    if (!(beta >= 0.0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", beta);
        PyErr_Format(PyExc_ValueError, "smooth_l1_loss(): beta must be non-negative, got %s", buf);
        return NULL;
    }
    /* beta = 0 is the L1 loss (torch switches to l1_loss too) */
    if (beta == 0.0) return pointwise_loss(x, t, red, HM_LOSS_L1, 0.0, "smooth_l1_loss");
    return pointwise_loss(x, t, red, HM_LOSS_SMOOTH_L1, beta, "smooth_l1_loss");
}

#define KW (PyCFunction)(void (*)(void))
PyMethodDef hm_methods_losses[] = {
    {"mse_loss", KW py_mse_loss, METH_VARARGS | METH_KEYWORDS, "mse_loss(input, target, reduction='mean')"},
    {"l1_loss", KW py_l1_loss, METH_VARARGS | METH_KEYWORDS, "l1_loss(input, target, reduction='mean')"},
    {"huber_loss", KW py_huber_loss, METH_VARARGS | METH_KEYWORDS,
     "huber_loss(input, target, reduction='mean', delta=1.0)"},
    {"smooth_l1_loss", KW py_smooth_l1_loss, METH_VARARGS | METH_KEYWORDS,
     "smooth_l1_loss(input, target, reduction='mean', beta=1.0)"},
    {NULL, NULL, 0, NULL},
};
#undef KW
