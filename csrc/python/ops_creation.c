/* Creation ops: constants, ranges and random tensors, plus in-place random
 * fills used by parameter initialisation. */
#include "hm.h"
#include "creation.h"
#include "rng.h"
#include <math.h>
#include <string.h>

static PyObject *finish(PyArrayObject *arr, int requires_grad) {
    PyObject *t = hm_wrap(arr);
    if (t && requires_grad) {
        if (PyArray_TYPE(arr) != NPY_FLOAT32) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_TypeError, "only float32 tensors can require gradients");
            return NULL;
        }
        ((HmTensor *)t)->requires_grad = 1;
    }
    return t;
}

/* full(size, value, dtype=None, requires_grad=False) */
static PyObject *py_full(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"size", "fill_value", "dtype", "requires_grad", NULL};
    PyObject *size, *value, *dtype = Py_None;
    int rg = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|Op:full", kwlist, &size, &value, &dtype, &rg)) return NULL;
    int nd, typenum;
    npy_intp shape[HM_MAX_DIMS];
    if (hm_parse_shape(size, "full", &nd, shape) < 0 || hm_parse_dtype(dtype, "full", &typenum) < 0) return NULL;
    PyArrayObject *a = hm_empty(nd, shape, typenum);
    if (!a) return NULL;
    int64_t n = (int64_t)PyArray_SIZE(a);
    if (typenum == NPY_FLOAT32) {
        double v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) { Py_DECREF(a); return NULL; }
        hm_fill_f32(AF32(a), n, (float)v);
    } else if (typenum == NPY_INT64) {
        long long v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(a); return NULL; }
        hm_fill_i64((int64_t *)PyArray_DATA(a), n, (int64_t)v);
    } else {
        int v = PyObject_IsTrue(value);
        if (v < 0) { Py_DECREF(a); return NULL; }
        memset(PyArray_DATA(a), v ? 1 : 0, (size_t)n);
    }
    return finish(a, rg);
}

/* arange(start, end, step, dtype=None) -- the Python wrapper sorts out the
 * one/two/three-argument forms. */
static PyObject *py_arange(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"start", "end", "step", "dtype", "requires_grad", NULL};
    double start, end, step;
    PyObject *dtype = Py_None;
    int rg = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ddd|Op:arange", kwlist, &start, &end, &step, &dtype, &rg))
        return NULL;
    int typenum;
    if (hm_parse_dtype(dtype, "arange", &typenum) < 0) return NULL;
    if (step == 0.0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
        PyErr_Format(PyExc_ValueError, "arange(): need finite start/end and a non-zero step, got (%g, %g, %g)", start,
                     end, step);
        return NULL;
    }
    double count = ceil((end - start) / step);
    if (count < 0) count = 0;
    if (count > 1e12) {
        PyErr_Format(PyExc_ValueError, "arange(): %g elements is too many", count);
        return NULL;
    }
    npy_intp n = (npy_intp)count;
    PyArrayObject *a = hm_empty(1, &n, typenum);
    if (!a) return NULL;
    if (typenum == NPY_INT64) hm_arange_i64((int64_t *)PyArray_DATA(a), n, (int64_t)start, (int64_t)step);
    else if (typenum == NPY_FLOAT32) hm_arange_f32(AF32(a), n, start, step);
    else {
        Py_DECREF(a);
        PyErr_SetString(PyExc_TypeError, "arange(): dtype bool is not supported");
        return NULL;
    }
    return finish(a, rg);
}

static PyObject *py_linspace(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"start", "end", "steps", "requires_grad", NULL};
    double start, end;
    Py_ssize_t steps;
    int rg = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ddn|p:linspace", kwlist, &start, &end, &steps, &rg)) return NULL;
    if (steps < 0) {
        PyErr_Format(PyExc_ValueError, "linspace(): steps must be non-negative, got %zd", steps);
        return NULL;
    }
    npy_intp n = steps;
    PyArrayObject *a = hm_empty(1, &n, NPY_FLOAT32);
    if (!a) return NULL;
    if (n > 0) hm_linspace_f32(AF32(a), n, start, end);
    return finish(a, rg);
}

/* rand(size) / randn(size): uniform [0, 1) and standard normal float32. */
static PyObject *random_float(PyObject *args, PyObject *kw, int normal) {
    static char *kwlist[] = {"size", "requires_grad", NULL};
    PyObject *size;
    int rg = 0;
    const char *name = normal ? "randn" : "rand";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p", kwlist, &size, &rg)) return NULL;
    int nd;
    npy_intp shape[HM_MAX_DIMS];
    if (hm_parse_shape(size, name, &nd, shape) < 0) return NULL;
    PyArrayObject *a = hm_empty(nd, shape, NPY_FLOAT32);
    if (!a) return NULL;
    int64_t n = (int64_t)PyArray_SIZE(a);
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    if (normal) hm_rand_normal(AF32(a), n, seed, offset, 0.0f, 1.0f);
    else hm_rand_uniform(AF32(a), n, seed, offset, 0.0f, 1.0f);
    return finish(a, rg);
}
static PyObject *py_rand(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return random_float(args, kw, 0); }
static PyObject *py_randn(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return random_float(args, kw, 1); }

static PyObject *py_randint(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"low", "high", "size", NULL};
    long long low, high;
    PyObject *size;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LLO:randint", kwlist, &low, &high, &size)) return NULL;
    if (high <= low) {
        PyErr_Format(PyExc_ValueError, "randint(): need low < high, got low=%lld high=%lld", low, high);
        return NULL;
    }
    int nd;
    npy_intp shape[HM_MAX_DIMS];
    if (hm_parse_shape(size, "randint", &nd, shape) < 0) return NULL;
    PyArrayObject *a = hm_empty(nd, shape, NPY_INT64);
    if (!a) return NULL;
    int64_t n = (int64_t)PyArray_SIZE(a);
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    hm_rand_int64((int64_t *)PyArray_DATA(a), n, seed, offset, low, high);
    return hm_wrap(a);
}

static PyObject *py_randperm(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "randperm(): n must be non-negative, got %zd", n);
        return NULL;
    }
    npy_intp dim = n;
    PyArrayObject *a = hm_empty(1, &dim, NPY_INT64);
    if (!a) return NULL;
    uint64_t *keys = hm_scratch((size_t)(2 * (n > 0 ? n : 1)) * sizeof(uint64_t));
    if (!keys) { Py_DECREF(a); return NULL; }
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    hm_rand_perm((int64_t *)PyArray_DATA(a), keys, n, seed, offset);
    hm_scratch_free(keys);
    return hm_wrap(a);
}

/* In-place fills for initialisation: uniform_(t, low, high), normal_(t, mean, std),
 * fill_(t, value). Refused on tensors that require grad unless under no_grad. */
static HmTensor *inplace_target(PyObject *obj, const char *opname) {
    if (!hm_is_tensor(obj)) {
        PyErr_Format(PyExc_TypeError, "%s(): expected a tensor, got %s", opname, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    HmTensor *t = (HmTensor *)obj;
    if (hm_require_float(t, opname, "tensor") < 0 || hm_check_inplace(t, opname) < 0) return NULL;
    return t;
}

static PyObject *py_uniform_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    double low, high;
    if (!PyArg_ParseTuple(args, "Odd:uniform_", &obj, &low, &high)) return NULL;
    HmTensor *t = inplace_target(obj, "uniform_");
    if (!t) return NULL;
    int64_t n = HM_NUMEL(t);
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    hm_rand_uniform(HM_F32(t), n, seed, offset, (float)low, (float)high);
    t->version++;
    Py_INCREF(obj);
    return obj;
}

static PyObject *py_normal_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    double mean, std;
    if (!PyArg_ParseTuple(args, "Odd:normal_", &obj, &mean, &std)) return NULL;
    HmTensor *t = inplace_target(obj, "normal_");
    if (!t) return NULL;
    int64_t n = HM_NUMEL(t);
    uint64_t seed, offset;
    hm_rng_reserve((uint64_t)n, &seed, &offset);
    hm_rand_normal(HM_F32(t), n, seed, offset, (float)mean, (float)std);
    t->version++;
    Py_INCREF(obj);
    return obj;
}

static PyObject *py_fill_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    double v;
    if (!PyArg_ParseTuple(args, "Od:fill_", &obj, &v)) return NULL;
    HmTensor *t = inplace_target(obj, "fill_");
    if (!t) return NULL;
    hm_fill_f32(HM_F32(t), HM_NUMEL(t), (float)v);
    t->version++;
    Py_INCREF(obj);
    return obj;
}

/* copy_(dst, src): copy values (same shape; src converted to dst's dtype). */
static PyObject *py_copy_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *dobj, *sobj;
    if (!PyArg_ParseTuple(args, "OO:copy_", &dobj, &sobj)) return NULL;
    if (!hm_is_tensor(dobj)) {
        PyErr_Format(PyExc_TypeError, "copy_(): expected a tensor, got %s", Py_TYPE(dobj)->tp_name);
        return NULL;
    }
    HmTensor *d = (HmTensor *)dobj;
    if (hm_check_inplace(d, "copy_") < 0) return NULL;
    HmTensor *s = hm_as_tensor(sobj, "copy_", "src");
    if (!s) return NULL;
    if (!PyArray_SAMESHAPE(d->arr, s->arr)) {
        char a[128], b[128];
        PyErr_Format(PyExc_ValueError, "copy_(): src has shape %s but the tensor has shape %s",
                     hm_shape_str(HM_NDIM(s), HM_SHAPE(s), a, sizeof a), hm_shape_str(HM_NDIM(d), HM_SHAPE(d), b, sizeof b));
        Py_DECREF(s);
        return NULL;
    }
    int rc = PyArray_CopyInto(d->arr, s->arr);
    Py_DECREF(s);
    if (rc < 0) return NULL;
    d->version++;
    Py_INCREF(dobj);
    return dobj;
}

PyMethodDef hm_methods_creation[] = {
    {"full", (PyCFunction)(void (*)(void))py_full, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_arange", (PyCFunction)(void (*)(void))py_arange, METH_VARARGS | METH_KEYWORDS, NULL},
    {"linspace", (PyCFunction)(void (*)(void))py_linspace, METH_VARARGS | METH_KEYWORDS,
     "linspace(start, end, steps): evenly spaced float32 values, both ends included."},
    {"_rand", (PyCFunction)(void (*)(void))py_rand, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_randn", (PyCFunction)(void (*)(void))py_randn, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_randint", (PyCFunction)(void (*)(void))py_randint, METH_VARARGS | METH_KEYWORDS, NULL},
    {"randperm", py_randperm, METH_O, "randperm(n): a random permutation of 0..n-1 (int64)."},
    {"uniform_", py_uniform_, METH_VARARGS, NULL},
    {"normal_", py_normal_, METH_VARARGS, NULL},
    {"fill_", py_fill_, METH_VARARGS, NULL},
    {"copy_", py_copy_, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
