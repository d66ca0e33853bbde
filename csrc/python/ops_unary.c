/* Unary elementwise ops (exp, log, tanh, ...), tensor ** scalar, clamp with
 * number bounds, logit and nan_to_num.
 *
 * dtypes, as in torch for the math functions: bool and int64 inputs are
 * converted to float32 first (torch.exp(int_tensor) is float too). Where
 * torch would keep an integer dtype (abs, floor, sign, square, ...) hepml
 * still returns float32, like all of its arithmetic. Negating a bool tensor
 * is an error, as in torch: it is almost always a mask meant for `~`. */
#include "hm.h"
#include "unary.h"
#include <math.h>

static const char *const backward_names[HM_U_COUNT] = {
    [HM_U_NEG] = "NegBackward", [HM_U_ABS] = "AbsBackward", [HM_U_EXP] = "ExpBackward",
    [HM_U_LOG] = "LogBackward", [HM_U_LOG1P] = "Log1pBackward", [HM_U_EXPM1] = "Expm1Backward",
    [HM_U_SQRT] = "SqrtBackward", [HM_U_RSQRT] = "RsqrtBackward", [HM_U_SQUARE] = "SquareBackward",
    [HM_U_SIN] = "SinBackward", [HM_U_COS] = "CosBackward", [HM_U_TANH] = "TanhBackward",
    [HM_U_SIGMOID] = "SigmoidBackward", [HM_U_ATAN] = "AtanBackward", [HM_U_SIGN] = "SignBackward",
    [HM_U_FLOOR] = "FloorBackward", [HM_U_CEIL] = "CeilBackward", [HM_U_ROUND] = "RoundBackward",
    [HM_U_RECIPROCAL] = "ReciprocalBackward", [HM_U_ERF] = "ErfBackward", [HM_U_LOGIT] = "LogitBackward",
    [HM_U_POW] = "PowBackward", [HM_U_CLAMP] = "ClampBackward", [HM_U_NAN_TO_NUM] = "NanToNumBackward",
    [HM_U_ROUND_DEC] = "RoundBackward",
};

static int unary_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int op = (int)n->i[0];
    float prm[3] = {(float)n->f[0], (float)n->f[1], (float)n->f[2]};
    int needs = hm_unary_backward_needs(op);
    PyArrayObject *s = NULL;
    if (needs && !(s = hm_node_saved(n, 0))) return -1;
    PyArrayObject *gx = hm_empty_like(g);
    if (!gx) return -1;
    hm_unary_backward(AF32(gx), AF32(g), needs == 1 ? AF32(s) : NULL, needs == 2 ? AF32(s) : NULL,
                      (int64_t)PyArray_SIZE(g), op, prm);
    gin[0] = gx;
    return 0;
}

/* Run op on x (a new reference, consumed) and record the node. Also used by
 * ops_elementwise.c for pow(tensor, number) and clamp(tensor, number, number). */
PyObject *hm_unary_apply(HmTensor *x, int op, const float *prm, int nprm) {
    PyArrayObject *out = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_FLOAT32);
    if (!out) { Py_DECREF(x); return NULL; }
    hm_unary_forward(AF32(out), HM_F32(x), HM_NUMEL(x), op, prm);
    PyObject *inputs[1] = {(PyObject *)x};
    HmNode *node = hm_node_new(backward_names[op], unary_backward, inputs, 1);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); Py_DECREF(x); return NULL; }
    if (node) {
        node->i[0] = op;
        for (int k = 0; k < nprm && k < 3; k++) node->f[k] = prm[k];
        int needs = hm_unary_backward_needs(op);
        /* the input as a tensor (version-checked), the output as its array */
        int rc = needs == 1 ? hm_node_save(node, (PyObject *)x) : needs == 2 ? hm_node_save(node, (PyObject *)out) : 0;
        if (rc < 0) { Py_DECREF(node); Py_DECREF(out); Py_DECREF(x); return NULL; }
    }
    Py_DECREF(x);
    return hm_wrap_with_node(out, (PyObject *)node);
}

static PyObject *unary(PyObject *arg, const char *name, int op) {
    if (op == HM_U_NEG && hm_is_tensor(arg) && HM_DTYPE(arg) == NPY_BOOL) {
        PyErr_SetString(PyExc_TypeError, "neg(): negating a bool tensor is not supported (as in torch); to invert "
                                         "a mask use `~mask` or hepml.logical_not(mask)");
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(arg, name, "input");
    if (!x) return NULL;
    return hm_unary_apply(x, op, NULL, 0);
}

#define UNARY_FN(fname, OP)                                                      \
    static PyObject *py_##fname(PyObject *self, PyObject *arg) {                \
        (void)self;                                                             \
        return unary(arg, #fname, OP);                                          \
    }
UNARY_FN(neg, HM_U_NEG)
UNARY_FN(abs, HM_U_ABS)
UNARY_FN(exp, HM_U_EXP)
UNARY_FN(log, HM_U_LOG)
UNARY_FN(log1p, HM_U_LOG1P)
UNARY_FN(expm1, HM_U_EXPM1)
UNARY_FN(sqrt, HM_U_SQRT)
UNARY_FN(rsqrt, HM_U_RSQRT)
UNARY_FN(square, HM_U_SQUARE)
UNARY_FN(sin, HM_U_SIN)
UNARY_FN(cos, HM_U_COS)
UNARY_FN(tanh, HM_U_TANH)
UNARY_FN(sigmoid, HM_U_SIGMOID)
UNARY_FN(atan, HM_U_ATAN)
UNARY_FN(sign, HM_U_SIGN)
UNARY_FN(floor, HM_U_FLOOR)
UNARY_FN(ceil, HM_U_CEIL)
UNARY_FN(reciprocal, HM_U_RECIPROCAL)
UNARY_FN(erf, HM_U_ERF)

/* A number argument (Python or NumPy scalar, or None -> dflt). Tensors and
 * arrays are refused with a message naming the op and argument. */
static int number_arg(PyObject *o, double dflt, const char *op, const char *arg, double *out) {
    if (!o || o == Py_None) { *out = dflt; return 0; }
    if (hm_is_tensor(o) || PyArray_Check(o) || !PyNumber_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a number or None, got %s", op, arg,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* round(input, decimals=0): half to even, as torch */
static PyObject *py_round(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "decimals", NULL};
    PyObject *xo;
    int decimals = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$i:round", kwlist, &xo, &decimals)) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, "round", "input");
    if (!x) return NULL;
    if (decimals == 0) return hm_unary_apply(x, HM_U_ROUND, NULL, 0);
    float prm[2] = {(float)pow(10.0, decimals < 0 ? -decimals : decimals), decimals < 0 ? 1.0f : 0.0f};
    return hm_unary_apply(x, HM_U_ROUND_DEC, prm, 2);
}

/* logit(input, eps=None) */
static PyObject *py_logit(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "eps", NULL};
    PyObject *xo, *epso = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:logit", kwlist, &xo, &epso)) return NULL;
    double eps;
    if (number_arg(epso, -1.0, "logit", "eps", &eps) < 0) return NULL;
    if (epso != Py_None && !(eps >= 0.0 && eps <= 0.5)) {
        PyErr_Format(PyExc_ValueError, "logit(): eps must be in [0, 0.5] or None, got %g", eps);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "logit", "input");
    if (!x) return NULL;
    float prm[1] = {(float)eps};
    return hm_unary_apply(x, HM_U_LOGIT, prm, 1);
}

/* nan_to_num(input, nan=0.0, posinf=None, neginf=None): infinities default to
 * the largest finite float32 values, as in torch. */
static PyObject *py_nan_to_num(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "nan", "posinf", "neginf", NULL};
    PyObject *xo, *no = Py_None, *po = Py_None, *mo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO:nan_to_num", kwlist, &xo, &no, &po, &mo)) return NULL;
    double vn, vp, vm;
    if (number_arg(no, 0.0, "nan_to_num", "nan", &vn) < 0 || number_arg(po, 3.4028234663852886e38, "nan_to_num",
        "posinf", &vp) < 0 || number_arg(mo, -3.4028234663852886e38, "nan_to_num", "neginf", &vm) < 0)
        return NULL;
    HmTensor *x = hm_as_float_tensor(xo, "nan_to_num", "input");
    if (!x) return NULL;
    float prm[3] = {(float)vn, (float)vp, (float)vm};
    return hm_unary_apply(x, HM_U_NAN_TO_NUM, prm, 3);
}

#define DOC(name, what) {#name, py_##name, METH_O, #name "(input): " what}
PyMethodDef hm_methods_unary[] = {
    DOC(neg, "-input."),
    DOC(abs, "|input|; gradient sign(input) (0 at 0)."),
    DOC(exp, "e ** input."),
    DOC(log, "natural logarithm (nan below 0, -inf at 0)."),
    DOC(log1p, "log(1 + input), accurate near 0."),
    DOC(expm1, "exp(input) - 1, accurate near 0."),
    DOC(sqrt, "square root."),
    DOC(rsqrt, "1 / sqrt(input)."),
    DOC(square, "input * input."),
    DOC(sin, "sine."),
    DOC(cos, "cosine."),
    DOC(tanh, "hyperbolic tangent."),
    DOC(sigmoid, "1 / (1 + exp(-input))."),
    DOC(atan, "arc tangent."),
    DOC(sign, "-1, 0 or 1 (0 for nan, as torch); zero gradient."),
    DOC(floor, "round down; zero gradient."),
    DOC(ceil, "round up; zero gradient."),
    DOC(reciprocal, "1 / input."),
    DOC(erf, "error function."),
    {"round", (PyCFunction)(void (*)(void))py_round, METH_VARARGS | METH_KEYWORDS,
     "round(input, *, decimals=0): round half to even; zero gradient."},
    {"logit", (PyCFunction)(void (*)(void))py_logit, METH_VARARGS | METH_KEYWORDS,
     "logit(input, eps=None): log(p / (1 - p)), input clamped to [eps, 1 - eps] when eps is given."},
    {"nan_to_num", (PyCFunction)(void (*)(void))py_nan_to_num, METH_VARARGS | METH_KEYWORDS,
     "nan_to_num(input, nan=0.0, posinf=None, neginf=None): replace nan and infinities."},
    {NULL, NULL, 0, NULL},
};
