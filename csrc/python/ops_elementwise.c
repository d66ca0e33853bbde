/* Elementwise ops with NumPy broadcasting: add, sub, mul, div, pow, atan2,
 * remainder, fmod, maximum, minimum, clamp and where. Operands may be tensors,
 * arrays or numbers; bool/int64 operands are converted to float32. */
#include "hm.h"
#include "broadcast.h"
#include "elementwise.h"
#include "unary.h"
#include <math.h>

/* From ops_unary.c: run a unary kernel on x (reference consumed) and record
 * its node; pow(tensor, number) and clamp(tensor, number, number) use it. */
PyObject *hm_unary_apply(HmTensor *x, int op, const float *prm, int nprm);

typedef struct {
    int ndim;
    int64_t shape[HM_MAX_DIMS], s[3][HM_MAX_DIMS];
} bcast_plan;

/* Broadcast strides of up to three arrays (NULL entries skipped) over `out`. */
static void make_plan(bcast_plan *p, int nout, const npy_intp *out, PyArrayObject *a, PyArrayObject *b,
                      PyArrayObject *c) {
    PyArrayObject *ops[3] = {a, b, c};
    p->ndim = nout;
    for (int d = 0; d < nout; d++) p->shape[d] = out[d];
    for (int k = 0; k < 3; k++) {
        if (!ops[k]) continue;
        int64_t s[HM_MAX_DIMS];
        for (int d = 0; d < PyArray_NDIM(ops[k]); d++) s[d] = PyArray_DIM(ops[k], d);
        hm_broadcast_strides(p->s[k], nout, p->shape, PyArray_NDIM(ops[k]), s);
    }
}

static const char *const binary_names[HM_BINARY_COUNT] = {
    "add", "sub", "mul", "div", "pow", "atan2", "remainder", "fmod", "maximum", "minimum"};
static const char *const backward_names[HM_BINARY_COUNT] = {
    "AddBackward", "SubBackward", "MulBackward", "DivBackward", "PowBackward", "Atan2Backward",
    "RemainderBackward", "FmodBackward", "MaximumBackward", "MinimumBackward"};

static int binary_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int op = (int)n->i[0];
    if (op == HM_ADD || op == HM_SUB) {
        /* the gradient passes through (negated for sub's second operand); the
         * engine sums it down to each operand's shape */
        if (n->inputs[0]) { Py_INCREF(g); gin[0] = g; }
        if (n->inputs[1]) {
            if (op == HM_ADD) { Py_INCREF(g); gin[1] = g; }
            else {
                if (!(gin[1] = hm_empty_like(g))) return -1;
                hm_unary_forward(AF32(gin[1]), AF32(g), (int64_t)PyArray_SIZE(g), HM_U_NEG, NULL);
            }
        }
        return 0;
    }
    PyArrayObject *a = hm_node_saved(n, 0), *b = a ? hm_node_saved(n, 1) : NULL;
    if (!b) return -1;
    bcast_plan p;
    make_plan(&p, PyArray_NDIM(g), PyArray_DIMS(g), a, b, NULL);
    PyArrayObject *da = NULL, *db = NULL;
    if (n->inputs[0] && !(da = hm_empty_like(g))) return -1;
    if (n->inputs[1] && !(db = hm_empty_like(g))) { Py_XDECREF(da); return -1; }
    hm_binary_backward(da ? AF32(da) : NULL, db ? AF32(db) : NULL, AF32(g), AF32(a), AF32(b), p.ndim, p.shape,
                       p.s[0], p.s[1], op);
    gin[0] = da;
    gin[1] = db;
    return 0;
}

/* Convert operands, broadcast, run, record. Consumes nothing. */
static PyObject *binary_objects(PyObject *ao, PyObject *bo, int op) {
    const char *name = binary_names[op];
    HmTensor *a = hm_as_float_tensor(ao, name, "input");
    if (!a) return NULL;
    HmTensor *b = hm_as_float_tensor(bo, name, op == HM_POW ? "exponent" : "other");
    if (!b) { Py_DECREF(a); return NULL; }
    int nout;
    npy_intp out_shape[HM_MAX_DIMS];
    PyObject *result = NULL;
    if (hm_broadcast_shapes(HM_NDIM(a), HM_SHAPE(a), HM_NDIM(b), HM_SHAPE(b), &nout, out_shape, name, "input",
                            op == HM_POW ? "exponent" : "other") < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, out_shape, NPY_FLOAT32);
    if (!out) goto done;
    bcast_plan p;
    make_plan(&p, nout, out_shape, a->arr, b->arr, NULL);
    hm_binary_forward(AF32(out), HM_F32(a), HM_F32(b), p.ndim, p.shape, p.s[0], p.s[1], op);
    PyObject *inputs[2] = {(PyObject *)a, (PyObject *)b};
    HmNode *node = hm_node_new(backward_names[op], binary_backward, inputs, 2);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = op;
        if (op != HM_ADD && op != HM_SUB &&
            (hm_node_save(node, (PyObject *)a) < 0 || hm_node_save(node, (PyObject *)b) < 0)) {
            Py_DECREF(node);
            Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

static PyObject *binary(PyObject *args, int op) {
    PyObject *ao, *bo;
    if (!PyArg_UnpackTuple(args, binary_names[op], 2, 2, &ao, &bo)) return NULL;
    return binary_objects(ao, bo, op);
}

static PyObject *py_add(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_ADD); }
static PyObject *py_sub(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_SUB); }
static PyObject *py_mul(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_MUL); }
static PyObject *py_div(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_DIV); }
static PyObject *py_atan2(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_ATAN2); }
static PyObject *py_remainder(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_REMAINDER); }
static PyObject *py_fmod(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_FMOD); }
static PyObject *py_maximum(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_MAXIMUM); }
static PyObject *py_minimum(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_MINIMUM); }

/* A plain number (Python int/float or NumPy scalar; not bool, tensor or array). */
static int is_number(PyObject *o) {
    if (hm_is_tensor(o) || PyArray_Check(o) || PyBool_Check(o)) return 0;
    return PyFloat_Check(o) || PyLong_Check(o) || PyArray_IsScalar(o, Number);
}

/* pow(input, exponent): tensor ** number takes the unary fast path (x*x for
 * 2, sqrt for 0.5, ...); anything else broadcasts like the other ops. */
static PyObject *py_pow(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *eo;
    if (!PyArg_UnpackTuple(args, "pow", 2, 2, &xo, &eo)) return NULL;
    if (is_number(eo) && !is_number(xo)) {
        double p = PyFloat_AsDouble(eo);
        if (p == -1.0 && PyErr_Occurred()) return NULL;
        HmTensor *x = hm_as_float_tensor(xo, "pow", "input");
        if (!x) return NULL;
        float prm[1] = {(float)p};
        return hm_unary_apply(x, HM_U_POW, prm, 1);
    }
    return binary_objects(xo, eo, HM_POW);
}

/* ------------------------------------------------------------------- where */

static int where_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *c = hm_node_saved(n, 0);
    if (!c) return -1;
    bcast_plan p;
    make_plan(&p, PyArray_NDIM(g), PyArray_DIMS(g), c, NULL, NULL);
    PyArrayObject *dx = NULL, *dy = NULL;
    if (n->inputs[1] && !(dx = hm_empty_like(g))) return -1;
    if (n->inputs[2] && !(dy = hm_empty_like(g))) { Py_XDECREF(dx); return -1; }
    hm_where_backward(dx ? AF32(dx) : NULL, dy ? AF32(dy) : NULL, AF32(g), (const uint8_t *)PyArray_DATA(c),
                      p.ndim, p.shape, p.s[0]);
    gin[1] = dx;
    gin[2] = dy;
    return 0;
}

/* Broadcast three shapes; `names` describes the first two in the error of the second step. */
static int broadcast3(HmTensor *a, HmTensor *b, HmTensor *c, const char *op, const char *an, const char *bn,
                      const char *abn, const char *cn, int *nout, npy_intp *out) {
    int n1;
    npy_intp s1[HM_MAX_DIMS];
    if (hm_broadcast_shapes(HM_NDIM(a), HM_SHAPE(a), b ? HM_NDIM(b) : 0, b ? HM_SHAPE(b) : s1, &n1, s1, op, an,
                            bn) < 0)
        return -1;
    return hm_broadcast_shapes(n1, s1, c ? HM_NDIM(c) : 0, c ? HM_SHAPE(c) : s1, nout, out, op, abn, cn);
}

/* where(condition, input, other) */
static PyObject *py_where(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *co, *xo, *yo;
    if (!PyArg_UnpackTuple(args, "where", 3, 3, &co, &xo, &yo)) return NULL;
    HmTensor *c = hm_as_tensor(co, "where", "condition");
    if (!c) return NULL;
    if (HM_DTYPE(c) != NPY_BOOL) {
        PyErr_Format(PyExc_TypeError, "where(): argument 'condition' must be a bool tensor, got dtype %R "
                     "(as in torch; use e.g. `x != 0` to make one)", (PyObject *)PyArray_DESCR(c->arr));
        Py_DECREF(c);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "where", "input"), *y = x ? hm_as_float_tensor(yo, "where", "other") : NULL;
    PyObject *result = NULL;
    if (!y) goto done;
    int nout;
    npy_intp shape[HM_MAX_DIMS];
    if (broadcast3(c, x, y, "where", "condition", "input", "condition and input", "other", &nout, shape) < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, shape, NPY_FLOAT32);
    if (!out) goto done;
    bcast_plan p;
    make_plan(&p, nout, shape, c->arr, x->arr, y->arr);
    hm_where_forward(AF32(out), (const uint8_t *)PyArray_DATA(c->arr), HM_F32(x), HM_F32(y), p.ndim, p.shape, p.s[0],
                     p.s[1], p.s[2]);
    PyObject *inputs[3] = {NULL, (PyObject *)x, (PyObject *)y};
    HmNode *node = hm_node_new("WhereBackward", where_backward, inputs, 3);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node && hm_node_save(node, (PyObject *)c) < 0) { Py_DECREF(node); Py_DECREF(out); goto done; }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(c);
    Py_XDECREF(x);
    Py_XDECREF(y);
    return result;
}

/* ------------------------------------------------------------------- clamp */

static int clamp_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int has_lo = (int)n->i[0], has_hi = (int)n->i[1];
    PyArrayObject *x = hm_node_saved(n, 0);
    if (!x) return -1;
    PyArrayObject *lo = NULL, *hi = NULL;
    if (has_lo && !(lo = hm_node_saved(n, 1))) return -1;
    if (has_hi && !(hi = hm_node_saved(n, 1 + has_lo))) return -1;
    bcast_plan p;
    make_plan(&p, PyArray_NDIM(g), PyArray_DIMS(g), x, lo, hi);
    PyArrayObject *d[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (n->inputs[k] && !(d[k] = hm_empty_like(g))) {
            for (int j = 0; j < k; j++) Py_XDECREF(d[j]);
            return -1;
        }
    hm_clamp_backward(d[0] ? AF32(d[0]) : NULL, d[1] ? AF32(d[1]) : NULL, d[2] ? AF32(d[2]) : NULL, AF32(g),
                      AF32(x), lo ? AF32(lo) : NULL, hi ? AF32(hi) : NULL, p.ndim, p.shape, p.s[0], p.s[1], p.s[2]);
    for (int k = 0; k < 3; k++) gin[k] = d[k];
    return 0;
}

/* clamp(input, min=None, max=None): number bounds take the unary kernel;
 * tensor bounds broadcast with the input and receive gradients. */
static PyObject *py_clamp(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "min", "max", NULL};
    PyObject *xo, *lo_o = Py_None, *hi_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:clamp", kwlist, &xo, &lo_o, &hi_o)) return NULL;
    if (lo_o == Py_None && hi_o == Py_None) {
        PyErr_SetString(PyExc_ValueError, "clamp(): at least one of 'min' or 'max' must not be None");
        return NULL;
    }
    if ((lo_o == Py_None || is_number(lo_o)) && (hi_o == Py_None || is_number(hi_o))) {
        double lo = -INFINITY, hi = INFINITY;
        if (lo_o != Py_None && (lo = PyFloat_AsDouble(lo_o)) == -1.0 && PyErr_Occurred()) return NULL;
        if (hi_o != Py_None && (hi = PyFloat_AsDouble(hi_o)) == -1.0 && PyErr_Occurred()) return NULL;
        HmTensor *x = hm_as_float_tensor(xo, "clamp", "input");
        if (!x) return NULL;
        float prm[2] = {(float)lo, (float)hi};
        return hm_unary_apply(x, HM_U_CLAMP, prm, 2);
    }
    HmTensor *x = hm_as_float_tensor(xo, "clamp", "input"), *lo = NULL, *hi = NULL;
    PyObject *result = NULL;
    if (!x) return NULL;
    if (lo_o != Py_None && !(lo = hm_as_float_tensor(lo_o, "clamp", "min"))) goto done;
    if (hi_o != Py_None && !(hi = hm_as_float_tensor(hi_o, "clamp", "max"))) goto done;
    int nout;
    npy_intp shape[HM_MAX_DIMS];
    if (broadcast3(x, lo ? lo : hi, lo ? hi : NULL, "clamp", "input", lo ? "min" : "max",
                   "input and min", "max", &nout, shape) < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, shape, NPY_FLOAT32);
    if (!out) goto done;
    bcast_plan p;
    make_plan(&p, nout, shape, x->arr, lo ? lo->arr : NULL, hi ? hi->arr : NULL);
    hm_clamp_forward(AF32(out), HM_F32(x), lo ? HM_F32(lo) : NULL, hi ? HM_F32(hi) : NULL, p.ndim, p.shape, p.s[0],
                     p.s[1], p.s[2]);
    PyObject *inputs[3] = {(PyObject *)x, (PyObject *)lo, (PyObject *)hi};
    HmNode *node = hm_node_new("ClampBackward", clamp_backward, inputs, 3);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = lo != NULL;
        node->i[1] = hi != NULL;
        if (hm_node_save(node, (PyObject *)x) < 0 || (lo && hm_node_save(node, (PyObject *)lo) < 0) ||
            (hi && hm_node_save(node, (PyObject *)hi) < 0)) {
            Py_DECREF(node);
            Py_DECREF(out);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    return result;
}

PyMethodDef hm_methods_elementwise[] = {
    {"add", py_add, METH_VARARGS, "add(input, other): input + other with broadcasting."},
    {"sub", py_sub, METH_VARARGS, "sub(input, other): input - other with broadcasting."},
    {"mul", py_mul, METH_VARARGS, "mul(input, other): input * other with broadcasting."},
    {"div", py_div, METH_VARARGS, "div(input, other): input / other with broadcasting."},
    {"pow", py_pow, METH_VARARGS, "pow(input, exponent): input ** exponent with broadcasting."},
    {"atan2", py_atan2, METH_VARARGS, "atan2(input, other): angle of the point (other, input)."},
    {"remainder", py_remainder, METH_VARARGS,
     "remainder(input, other): input - floor(input / other) * other; the result has the sign of other (Python %)."},
    {"fmod", py_fmod, METH_VARARGS, "fmod(input, other): C's fmod; the result has the sign of input."},
    {"maximum", py_maximum, METH_VARARGS,
     "maximum(input, other): elementwise max, nan propagates; ties split the gradient in halves."},
    {"minimum", py_minimum, METH_VARARGS,
     "minimum(input, other): elementwise min, nan propagates; ties split the gradient in halves."},
    {"where", py_where, METH_VARARGS,
     "where(condition, input, other): input where condition is True, else other (all three broadcast)."},
    {"clamp", (PyCFunction)(void (*)(void))py_clamp, METH_VARARGS | METH_KEYWORDS,
     "clamp(input, min=None, max=None): min(max(input, min), max); bounds may be numbers or tensors."},
    {NULL, NULL, 0, NULL},
};
