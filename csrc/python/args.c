/* Argument conversion and checking shared by every binding. Errors name the
 * op, the argument, what it got and what it needs. */
#include "hm.h"
#include <stdio.h>
#include <string.h>

const char *hm_shape_str(int ndim, const npy_intp *shape, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %zd" : "%zd", (Py_ssize_t)shape[d]);
    if (used < n) used += (size_t)snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
    return buf;
}

HmTensor *hm_as_tensor(PyObject *obj, const char *opname, const char *argname) {
    if (hm_is_tensor(obj)) {
        Py_INCREF(obj);
        return (HmTensor *)obj;
    }
    if (obj == NULL || obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a tensor, got None", opname, argname);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 0, 0, NULL);
    if (!a) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a tensor, array or number, got %s", opname,
                     argname, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    int t = PyArray_TYPE(a);
    int typenum;
    if (t == NPY_BOOL) typenum = NPY_BOOL;
    else if (PyTypeNum_ISNUMBER(t) && !PyTypeNum_ISCOMPLEX(t)) typenum = NPY_FLOAT32;
    else {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must hold real numbers or booleans, got dtype %R", opname,
                     argname, (PyObject *)PyArray_DESCR(a));
        Py_DECREF(a);
        return NULL;
    }
    if (PyArray_NDIM(a) > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has %d dimensions, at most %d are supported", opname,
                     argname, PyArray_NDIM(a), HM_MAX_DIMS);
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = hm_array_copy(a, typenum);
    Py_DECREF(a);
    return (HmTensor *)hm_wrap(c);
}

HmTensor *hm_as_float_tensor(PyObject *obj, const char *opname, const char *argname) {
    HmTensor *t = hm_as_tensor(obj, opname, argname);
    if (!t || PyArray_TYPE(t->arr) == NPY_FLOAT32) return t;
    PyArrayObject *c = hm_array_copy(t->arr, NPY_FLOAT32);
    Py_DECREF(t);
    return (HmTensor *)hm_wrap(c);
}

int hm_require_float(HmTensor *t, const char *opname, const char *argname) {
    if (PyArray_TYPE(t->arr) == NPY_FLOAT32) return 0;
    PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a float32 tensor, got dtype %R (convert with .float())",
                 opname, argname, (PyObject *)PyArray_DESCR(t->arr));
    return -1;
}

int hm_broadcast_shapes(int na, const npy_intp *a, int nb, const npy_intp *b, int *nout, npy_intp *out,
                        const char *opname, const char *aname, const char *bname) {
    int n = na > nb ? na : nb;
    for (int d = 0; d < n; d++) {
        int da = d - (n - na), db = d - (n - nb);
        npy_intp sa = da >= 0 ? a[da] : 1, sb = db >= 0 ? b[db] : 1;
        if (sa == sb || sb == 1) out[d] = sa;
        else if (sa == 1) out[d] = sb;
        else {
            char s1[160], s2[160];
            PyErr_Format(PyExc_ValueError,
                         "%s(): shapes of '%s' %s and '%s' %s cannot be broadcast together (dimension %d: %zd vs %zd)",
                         opname, aname, hm_shape_str(na, a, s1, sizeof s1), bname, hm_shape_str(nb, b, s2, sizeof s2),
                         d - n, (Py_ssize_t)sa, (Py_ssize_t)sb);
            return -1;
        }
    }
    *nout = n;
    return 0;
}

int hm_parse_dim(PyObject *dim, int ndim, const char *opname, int *out) {
    if (!PyLong_Check(dim)) {
        PyErr_Format(PyExc_TypeError, "%s(): dim must be an int, got %s", opname, Py_TYPE(dim)->tp_name);
        return -1;
    }
    long d = PyLong_AsLong(dim);
    if (d == -1 && PyErr_Occurred()) return -1;
    int lim = ndim > 0 ? ndim : 1; /* a 0-d tensor accepts dim 0 / -1, as in torch */
    if (d < -lim || d >= lim) {
        PyErr_Format(PyExc_IndexError, "%s(): dim %ld is out of range for a tensor with %d dimensions "
                     "(expected %d to %d)", opname, d, ndim, -lim, lim - 1);
        return -1;
    }
    *out = (int)(d < 0 ? d + lim : d);
    return 0;
}

int hm_parse_dims(PyObject *dim, int ndim, const char *opname, uint32_t *mask) {
    if (dim == NULL || dim == Py_None) {
        *mask = ndim >= 32 ? 0xffffffffu : ((1u << ndim) - 1u);
        return 0;
    }
    *mask = 0;
    if (PyLong_Check(dim)) {
        int d;
        if (hm_parse_dim(dim, ndim, opname, &d) < 0) return -1;
        *mask = ndim ? (1u << d) : 0;
        return 0;
    }
    PyObject *seq = PySequence_Fast(dim, "dim must be None, an int or a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        int d;
        if (hm_parse_dim(PySequence_Fast_GET_ITEM(seq, k), ndim, opname, &d) < 0) { Py_DECREF(seq); return -1; }
        if (ndim && (*mask & (1u << d))) {
            PyErr_Format(PyExc_ValueError, "%s(): dim %d appears more than once", opname, d);
            Py_DECREF(seq);
            return -1;
        }
        if (ndim) *mask |= 1u << d;
    }
    Py_DECREF(seq);
    return 0;
}

int hm_check_inplace(HmTensor *t, const char *opname) {
    if (hm_grad_enabled() && t->requires_grad) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s(): in-place operation on a tensor that requires grad; wrap it in `with hepml.no_grad():` "
                     "(for parameter updates) or use the out-of-place version", opname);
        return -1;
    }
    if (!PyArray_ISWRITEABLE(t->arr)) {
        PyErr_Format(PyExc_ValueError, "%s(): the tensor's memory is read-only", opname);
        return -1;
    }
    return 0;
}

int hm_parse_shape(PyObject *obj, const char *opname, int *ndim, npy_intp *shape) {
    if (PyLong_Check(obj)) {
        Py_ssize_t v = PyLong_AsSsize_t(obj);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v < 0) { PyErr_Format(PyExc_ValueError, "%s(): negative size %zd", opname, v); return -1; }
        *ndim = 1;
        shape[0] = v;
        return 0;
    }
    PyObject *seq = PySequence_Fast(obj, "size must be an int or a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s(): at most %d dimensions, got %zd", opname, HM_MAX_DIMS, n);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, k);
        Py_ssize_t v = PyNumber_Check(it) ? PyNumber_AsSsize_t(it, PyExc_OverflowError) : -2;
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (v < 0) {
            PyErr_Format(PyExc_ValueError, "%s(): sizes must be non-negative ints, got %R at position %zd", opname,
                         it, k);
            Py_DECREF(seq);
            return -1;
        }
        shape[k] = v;
    }
    *ndim = (int)n;
    Py_DECREF(seq);
    return 0;
}

int hm_parse_dtype(PyObject *obj, const char *opname, int *typenum) {
    if (!obj || obj == Py_None) { *typenum = NPY_FLOAT32; return 0; }
    PyArray_Descr *d = NULL;
    if (!PyArray_DescrConverter(obj, &d)) return -1;
    int t = d->type_num;
    Py_DECREF(d);
    if (t != NPY_FLOAT32 && t != NPY_BOOL && t != NPY_INT64) {
        PyErr_Format(PyExc_TypeError, "%s(): dtype must be hepml.float32, hepml.int64 or hepml.bool, got %R", opname,
                     obj);
        return -1;
    }
    *typenum = t;
    return 0;
}
