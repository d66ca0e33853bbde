/* Comparisons and truth-value ops; every result is a bool tensor without
 * gradient: eq/ne/lt/le/gt/ge (broadcast), logical_and/or/xor/not (bool in;
 * float/int64 inputs count as `!= 0`, nan included, as in torch),
 * bitwise_and/or/xor/not (the & | ^ ~ operators: bool only), isnan, isinf,
 * isfinite, any, all.
 *
 * Comparisons run in float32, except that two int64 operands (an int64
 * tensor and an int64 tensor, Python int or integer array) are compared
 * exactly as int64, so index tensors above 2**24 compare correctly. */
#include "hm.h"
#include "broadcast.h"
#include "elementwise.h"
#include "unary.h"

static void strides_of(int64_t *st, int nout, const npy_intp *out, PyArrayObject *a) {
    int64_t os[HM_MAX_DIMS], as[HM_MAX_DIMS];
    for (int d = 0; d < nout; d++) os[d] = out[d];
    for (int d = 0; d < PyArray_NDIM(a); d++) as[d] = PyArray_DIM(a, d);
    hm_broadcast_strides(st, nout, os, PyArray_NDIM(a), as);
}

/* Does o hold integers that can take part in an exact int64 comparison? */
static int integer_like(PyObject *o) {
    if (hm_is_tensor(o)) return HM_DTYPE(o) == NPY_INT64;
    if (PyBool_Check(o)) return 0;
    if (PyLong_Check(o) || PyArray_IsScalar(o, Integer)) return 1;
    return PyArray_Check(o) && PyArray_ISINTEGER((PyArrayObject *)o);
}

/* An int64 tensor for an integer-like object (new reference). */
static HmTensor *as_int64_tensor(PyObject *o, const char *op, const char *arg) {
    if (hm_is_tensor(o)) { Py_INCREF(o); return (HmTensor *)o; }
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(o, PyArray_DescrFromType(NPY_INT64), 0, 0, 0, NULL);
    if (!a) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%s(): argument '%s' does not fit in int64", op, arg);
        return NULL;
    }
    if (PyArray_NDIM(a) > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has %d dimensions, at most %d are supported", op, arg,
                     PyArray_NDIM(a), HM_MAX_DIMS);
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = hm_array_copy(a, NPY_INT64);
    Py_DECREF(a);
    return (HmTensor *)hm_wrap(c);
}

static const char *const compare_names[] = {"eq", "ne", "lt", "le", "gt", "ge"};

static PyObject *compare(PyObject *args, int op) {
    const char *name = compare_names[op];
    PyObject *ao, *bo;
    if (!PyArg_UnpackTuple(args, name, 2, 2, &ao, &bo)) return NULL;
    int exact = integer_like(ao) && integer_like(bo) &&
                ((hm_is_tensor(ao) && HM_DTYPE(ao) == NPY_INT64) || (hm_is_tensor(bo) && HM_DTYPE(bo) == NPY_INT64));
    HmTensor *a = exact ? as_int64_tensor(ao, name, "input") : hm_as_float_tensor(ao, name, "input");
    if (!a) return NULL;
    HmTensor *b = exact ? as_int64_tensor(bo, name, "other") : hm_as_float_tensor(bo, name, "other");
    if (!b) { Py_DECREF(a); return NULL; }
    PyObject *result = NULL;
    int nout;
    npy_intp shape[HM_MAX_DIMS];
    if (hm_broadcast_shapes(HM_NDIM(a), HM_SHAPE(a), HM_NDIM(b), HM_SHAPE(b), &nout, shape, name, "input", "other") < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, shape, NPY_BOOL);
    if (!out) goto done;
    int64_t sa[HM_MAX_DIMS], sb[HM_MAX_DIMS], s[HM_MAX_DIMS];
    for (int d = 0; d < nout; d++) s[d] = shape[d];
    strides_of(sa, nout, shape, a->arr);
    strides_of(sb, nout, shape, b->arr);
    uint8_t *po = (uint8_t *)PyArray_DATA(out);
    if (exact)
        hm_compare_i64_forward(po, (const int64_t *)PyArray_DATA(a->arr), (const int64_t *)PyArray_DATA(b->arr), nout,
                               s, sa, sb, op);
    else
        hm_compare_forward(po, HM_F32(a), HM_F32(b), nout, s, sa, sb, op);
    result = hm_wrap(out);
done:
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

static PyObject *py_eq(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_EQ); }
static PyObject *py_ne(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_NE); }
static PyObject *py_lt(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_LT); }
static PyObject *py_le(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_LE); }
static PyObject *py_gt(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_GT); }
static PyObject *py_ge(PyObject *self, PyObject *args) { (void)self; return compare(args, HM_GE); }

/* A bool tensor for o: bool as is; float32 / int64 as `!= 0` (strict: only
 * bool accepted, for the bitwise operators). New reference. */
static HmTensor *as_bool_tensor(PyObject *o, const char *op, const char *arg, int strict) {
    HmTensor *t = hm_as_tensor(o, op, arg);
    if (!t || HM_DTYPE(t) == NPY_BOOL) return t;
    if (strict) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a bool tensor, got dtype %R; hepml's & | ^ ~ "
                     "work on masks only (use logical_and/logical_or/logical_xor/logical_not for numbers)", op, arg,
                     (PyObject *)PyArray_DESCR(t->arr));
        Py_DECREF(t);
        return NULL;
    }
    PyArrayObject *m = hm_empty(HM_NDIM(t), HM_SHAPE(t), NPY_BOOL);
    if (!m) { Py_DECREF(t); return NULL; }
    if (HM_DTYPE(t) == NPY_INT64)
        hm_int64_nonzero((uint8_t *)PyArray_DATA(m), (const int64_t *)PyArray_DATA(t->arr), HM_NUMEL(t));
    else
        hm_float_test((uint8_t *)PyArray_DATA(m), HM_F32(t), HM_NUMEL(t), HM_T_NONZERO);
    Py_DECREF(t);
    return (HmTensor *)hm_wrap(m);
}

static PyObject *logical(PyObject *args, int op, const char *name, int strict) {
    PyObject *ao, *bo;
    if (!PyArg_UnpackTuple(args, name, 2, 2, &ao, &bo)) return NULL;
    HmTensor *a = as_bool_tensor(ao, name, "input", strict);
    if (!a) return NULL;
    HmTensor *b = as_bool_tensor(bo, name, "other", strict);
    if (!b) { Py_DECREF(a); return NULL; }
    PyObject *result = NULL;
    int nout;
    npy_intp shape[HM_MAX_DIMS];
    if (hm_broadcast_shapes(HM_NDIM(a), HM_SHAPE(a), HM_NDIM(b), HM_SHAPE(b), &nout, shape, name, "input", "other") < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, shape, NPY_BOOL);
    if (!out) goto done;
    int64_t sa[HM_MAX_DIMS], sb[HM_MAX_DIMS], s[HM_MAX_DIMS];
    for (int d = 0; d < nout; d++) s[d] = shape[d];
    strides_of(sa, nout, shape, a->arr);
    strides_of(sb, nout, shape, b->arr);
    hm_logical_forward((uint8_t *)PyArray_DATA(out), (const uint8_t *)PyArray_DATA(a->arr),
                       (const uint8_t *)PyArray_DATA(b->arr), nout, s, sa, sb, op);
    result = hm_wrap(out);
done:
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

static PyObject *py_logical_and(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LAND, "logical_and", 0); }
static PyObject *py_logical_or(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LOR, "logical_or", 0); }
static PyObject *py_logical_xor(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LXOR, "logical_xor", 0); }
static PyObject *py_bitwise_and(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LAND, "bitwise_and", 1); }
static PyObject *py_bitwise_or(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LOR, "bitwise_or", 1); }
static PyObject *py_bitwise_xor(PyObject *self, PyObject *args) { (void)self; return logical(args, HM_LXOR, "bitwise_xor", 1); }

static PyObject *not_op(PyObject *arg, const char *name, int strict) {
    HmTensor *a = as_bool_tensor(arg, name, "input", strict);
    if (!a) return NULL;
    PyArrayObject *out = hm_empty(HM_NDIM(a), HM_SHAPE(a), NPY_BOOL);
    if (out) hm_logical_not((uint8_t *)PyArray_DATA(out), (const uint8_t *)PyArray_DATA(a->arr), HM_NUMEL(a));
    Py_DECREF(a);
    return out ? hm_wrap(out) : NULL;
}

static PyObject *py_logical_not(PyObject *self, PyObject *arg) { (void)self; return not_op(arg, "logical_not", 0); }
static PyObject *py_bitwise_not(PyObject *self, PyObject *arg) { (void)self; return not_op(arg, "bitwise_not", 1); }

static PyObject *float_test(PyObject *arg, const char *name, int test) {
    HmTensor *x = hm_as_float_tensor(arg, name, "input"); /* bool / int64 are never nan or inf */
    if (!x) return NULL;
    PyArrayObject *out = hm_empty(HM_NDIM(x), HM_SHAPE(x), NPY_BOOL);
    if (out) hm_float_test((uint8_t *)PyArray_DATA(out), HM_F32(x), HM_NUMEL(x), test);
    Py_DECREF(x);
    return out ? hm_wrap(out) : NULL;
}

static PyObject *py_isnan(PyObject *self, PyObject *arg) { (void)self; return float_test(arg, "isnan", HM_T_ISNAN); }
static PyObject *py_isinf(PyObject *self, PyObject *arg) { (void)self; return float_test(arg, "isinf", HM_T_ISINF); }
static PyObject *py_isfinite(PyObject *self, PyObject *arg) { (void)self; return float_test(arg, "isfinite", HM_T_ISFINITE); }

/* any/all(input, dim=None, keepdim=False) */
static PyObject *bool_reduce(PyObject *args, PyObject *kw, int all) {
    static char *kwlist[] = {"input", "dim", "keepdim", NULL};
    const char *name = all ? "all" : "any";
    PyObject *xo, *dimo = Py_None;
    int keepdim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, all ? "O|Op:all" : "O|Op:any", kwlist, &xo, &dimo, &keepdim))
        return NULL;
    HmTensor *x = as_bool_tensor(xo, name, "input", 0);
    if (!x) return NULL;
    int nd = HM_NDIM(x), ond = 0;
    npy_intp oshape[HM_MAX_DIMS];
    int64_t outer = 1, len = 1, inner = 1;
    if (dimo == Py_None) {
        len = HM_NUMEL(x);
        if (keepdim)
            for (int d = 0; d < nd; d++) oshape[ond++] = 1;
    } else {
        int dim;
        if (hm_parse_dim(dimo, nd, name, &dim) < 0) { Py_DECREF(x); return NULL; }
        for (int d = 0; d < nd; d++) {
            npy_intp s = HM_SHAPE(x)[d];
            if (d < dim) outer *= s;
            else if (d == dim) len = s;
            else inner *= s;
            if (d != dim) oshape[ond++] = s;
            else if (keepdim) oshape[ond++] = 1;
        }
    }
    PyArrayObject *out = hm_empty(ond, oshape, NPY_BOOL);
    if (out && outer * inner > 0)
        hm_bool_reduce((uint8_t *)PyArray_DATA(out), (const uint8_t *)PyArray_DATA(x->arr), outer, len, inner, all);
    Py_DECREF(x);
    return out ? hm_wrap(out) : NULL;
}

static PyObject *py_any(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return bool_reduce(args, kw, 0); }
static PyObject *py_all(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return bool_reduce(args, kw, 1); }

#define CMP_DOC(n, sym) {#n, py_##n, METH_VARARGS, #n "(input, other): input " sym " other as a bool tensor (broadcast)."}
#define KW (PyCFunction)(void (*)(void))
PyMethodDef hm_methods_compare[] = {
    CMP_DOC(eq, "=="), CMP_DOC(ne, "!="), CMP_DOC(lt, "<"), CMP_DOC(le, "<="), CMP_DOC(gt, ">"), CMP_DOC(ge, ">="),
    {"logical_and", py_logical_and, METH_VARARGS, "logical_and(input, other): bool result; numbers count as != 0."},
    {"logical_or", py_logical_or, METH_VARARGS, "logical_or(input, other): bool result; numbers count as != 0."},
    {"logical_xor", py_logical_xor, METH_VARARGS, "logical_xor(input, other): bool result; numbers count as != 0."},
    {"logical_not", py_logical_not, METH_O, "logical_not(input): bool result; numbers count as != 0."},
    {"bitwise_and", py_bitwise_and, METH_VARARGS, "bitwise_and(input, other): & of bool tensors."},
    {"bitwise_or", py_bitwise_or, METH_VARARGS, "bitwise_or(input, other): | of bool tensors."},
    {"bitwise_xor", py_bitwise_xor, METH_VARARGS, "bitwise_xor(input, other): ^ of bool tensors."},
    {"bitwise_not", py_bitwise_not, METH_O, "bitwise_not(input): ~ of a bool tensor."},
    {"isnan", py_isnan, METH_O, "isnan(input): bool tensor, True where input is nan."},
    {"isinf", py_isinf, METH_O, "isinf(input): bool tensor, True where input is +-inf."},
    {"isfinite", py_isfinite, METH_O, "isfinite(input): bool tensor, True where input is neither nan nor inf."},
    {"any", KW py_any, METH_VARARGS | METH_KEYWORDS,
     "any(input, dim=None, keepdim=False): is any element True (numbers: != 0)?"},
    {"all", KW py_all, METH_VARARGS | METH_KEYWORDS,
     "all(input, dim=None, keepdim=False): is every element True (numbers: != 0)?"},
    {NULL, NULL, 0, NULL},
};
