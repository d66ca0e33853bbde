/*
 * hepml._C.TensorBase: the C half of hepml.Tensor.
 *
 * A tensor is a NumPy array (contiguous, float32 / bool / int64) plus the
 * autograd fields. Python's hepml.Tensor subclasses this type and adds the
 * method surface (operators, .sum(), .reshape(), ...) as thin calls into
 * hepml._C, so that everything numeric happens here in C.
 */
#include "hm.h"
#include "structmember.h"

PyTypeObject *hm_tensor_class = &HmTensor_Type;

static PyObject *tensor_alloc_of(PyTypeObject *type, PyArrayObject *arr) {
    HmTensor *t = (HmTensor *)type->tp_alloc(type, 0);
    if (!t) { Py_DECREF(arr); return NULL; }
    t->arr = arr;
    t->grad = NULL;
    t->grad_fn = NULL;
    t->requires_grad = 0;
    t->retains_grad = 0;
    t->version = 0;
    return (PyObject *)t;
}

PyObject *hm_wrap(PyArrayObject *arr) {
    if (!arr) return NULL;
    return tensor_alloc_of(hm_tensor_class, arr);
}

PyObject *hm_wrap_with_node(PyArrayObject *arr, PyObject *node) {
    if (!arr) { Py_XDECREF(node); return NULL; }
    HmTensor *t = (HmTensor *)tensor_alloc_of(hm_tensor_class, arr);
    if (!t) { Py_XDECREF(node); return NULL; }
    if (node) {
        HmNode *n = (HmNode *)node;
        n->out_ndim = PyArray_NDIM(arr);
        for (int d = 0; d < n->out_ndim; d++) n->out_shape[d] = PyArray_DIM(arr, d);
        n->out_dtype = PyArray_TYPE(arr);
        t->grad_fn = node;
        t->requires_grad = 1;
    }
    return (PyObject *)t;
}

/* Accept the dtypes hepml stores; convert every other real dtype. */
static int storage_type_for(PyArrayObject *a, PyObject *dtype_arg, int *typenum) {
    if (dtype_arg && dtype_arg != Py_None) {
        PyArray_Descr *d = NULL;
        if (!PyArray_DescrConverter(dtype_arg, &d)) return -1;
        int t = d->type_num;
        Py_DECREF(d);
        if (t != NPY_FLOAT32 && t != NPY_BOOL && t != NPY_INT64) {
            PyErr_Format(PyExc_TypeError,
                         "hepml.tensor: dtype must be hepml.float32, hepml.int64 or hepml.bool, got %R", dtype_arg);
            return -1;
        }
        *typenum = t;
        return 0;
    }
    int t = PyArray_TYPE(a);
    if (t == NPY_BOOL) *typenum = NPY_BOOL;
    else if (PyTypeNum_ISNUMBER(t) && !PyTypeNum_ISCOMPLEX(t)) *typenum = NPY_FLOAT32;
    else {
        PyErr_Format(PyExc_TypeError,
                     "hepml.tensor: data must be real numbers or booleans, got an array of dtype %R",
                     (PyObject *)PyArray_DESCR(a));
        return -1;
    }
    return 0;
}

/* _C.tensor(data, dtype=None, requires_grad=False): always copies, like torch.tensor. */
PyObject *hm_py_tensor(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"data", "dtype", "requires_grad", NULL};
    PyObject *data, *dtype = Py_None;
    int requires_grad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Op:tensor", kwlist, &data, &dtype, &requires_grad)) return NULL;
    PyArrayObject *src;
    if (hm_is_tensor(data)) {
        src = HM_ARR(data);
        Py_INCREF(src);
    } else {
        src = (PyArrayObject *)PyArray_FromAny(data, NULL, 0, 0, 0, NULL);
        if (!src) return NULL;
    }
    int typenum;
    if (storage_type_for(src, dtype, &typenum) < 0) { Py_DECREF(src); return NULL; }
    if (PyArray_NDIM(src) > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "hepml.tensor: at most %d dimensions, got %d", HM_MAX_DIMS, PyArray_NDIM(src));
        Py_DECREF(src);
        return NULL;
    }
    if (requires_grad && typenum != NPY_FLOAT32) {
        Py_DECREF(src);
        PyErr_SetString(PyExc_TypeError, "hepml.tensor: only float32 tensors can require gradients");
        return NULL;
    }
    PyArrayObject *arr = hm_array_copy(src, typenum);
    Py_DECREF(src);
    PyObject *t = hm_wrap(arr);
    if (t) ((HmTensor *)t)->requires_grad = (char)requires_grad;
    return t;
}

/* _C.from_numpy(array): shares memory when the array is already contiguous,
 * aligned, writeable and of a storage dtype; copies otherwise (documented). */
PyObject *hm_py_from_numpy(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyArray_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "hepml.from_numpy: expected a numpy.ndarray, got %s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)arg;
    int t = PyArray_TYPE(a);
    if ((t == NPY_FLOAT32 || t == NPY_BOOL || t == NPY_INT64) && PyArray_ISCARRAY(a) && PyArray_NDIM(a) <= HM_MAX_DIMS) {
        Py_INCREF(a);
        return hm_wrap(a);
    }
    PyObject *tup = PyTuple_Pack(1, arg);
    if (!tup) return NULL;
    PyObject *res = hm_py_tensor(NULL, tup, NULL);
    Py_DECREF(tup);
    return res;
}

static void tensor_dealloc(HmTensor *t) {
    PyObject_GC_UnTrack(t);
    if (t->weakreflist) PyObject_ClearWeakRefs((PyObject *)t);
    Py_CLEAR(t->arr);
    Py_CLEAR(t->grad);
    Py_CLEAR(t->grad_fn);
    Py_CLEAR(t->dict);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int tensor_traverse(HmTensor *t, visitproc visit, void *arg) {
    Py_VISIT(t->grad);
    Py_VISIT(t->grad_fn);
    Py_VISIT(t->dict);
    return 0;
}

static int tensor_clear(HmTensor *t) {
    Py_CLEAR(t->grad);
    Py_CLEAR(t->grad_fn);
    Py_CLEAR(t->dict);
    return 0;
}

/* TensorBase(array_like, requires_grad=False): used by subclasses such as
 * nn.Parameter; copies like hepml.tensor. */
static PyObject *tensor_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"data", "requires_grad", NULL};
    PyObject *data = NULL;
    int requires_grad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op:Tensor", kwlist, &data, &requires_grad)) return NULL;
    PyArrayObject *arr;
    if (!data) {
        npy_intp zero = 0;
        arr = hm_empty(1, &zero, NPY_FLOAT32);
    } else if (hm_is_tensor(data)) {
        /* Share storage (Parameter(t) wraps t's values, as torch does). */
        arr = HM_ARR(data);
        Py_INCREF(arr);
    } else {
        PyObject *tmp = PyTuple_Pack(1, data);
        if (!tmp) return NULL;
        PyObject *t = hm_py_tensor(NULL, tmp, NULL);
        Py_DECREF(tmp);
        if (!t) return NULL;
        arr = HM_ARR(t);
        Py_INCREF(arr);
        Py_DECREF(t);
    }
    if (!arr) return NULL;
    if (requires_grad && PyArray_TYPE(arr) != NPY_FLOAT32) {
        Py_DECREF(arr);
        PyErr_SetString(PyExc_TypeError, "only float32 tensors can require gradients");
        return NULL;
    }
    PyObject *t = tensor_alloc_of(type, arr);
    if (t) ((HmTensor *)t)->requires_grad = (char)requires_grad;
    return t;
}

/* ----------------------------------------------------------- properties */

static PyObject *get_shape(HmTensor *t, void *c) {
    (void)c;
    int nd = PyArray_NDIM(t->arr);
    PyObject *tup = PyTuple_New(nd);
    if (!tup) return NULL;
    for (int d = 0; d < nd; d++) PyTuple_SET_ITEM(tup, d, PyLong_FromSsize_t(PyArray_DIM(t->arr, d)));
    return tup;
}
static PyObject *get_ndim(HmTensor *t, void *c) { (void)c; return PyLong_FromLong(PyArray_NDIM(t->arr)); }
static PyObject *get_dtype(HmTensor *t, void *c) {
    (void)c;
    PyObject *d = (PyObject *)PyArray_DESCR(t->arr);
    Py_INCREF(d);
    return d;
}
static PyObject *get_requires_grad(HmTensor *t, void *c) { (void)c; return PyBool_FromLong(t->requires_grad); }
static int set_requires_grad(HmTensor *t, PyObject *v, void *c) {
    (void)c;
    int flag = PyObject_IsTrue(v);
    if (flag < 0) return -1;
    if (t->grad_fn && !flag) {
        PyErr_SetString(PyExc_RuntimeError,
                        "requires_grad can only be turned off on leaf tensors; use .detach() for a result of an operation");
        return -1;
    }
    if (flag && PyArray_TYPE(t->arr) != NPY_FLOAT32) {
        PyErr_SetString(PyExc_TypeError, "only float32 tensors can require gradients");
        return -1;
    }
    if (!t->grad_fn) t->requires_grad = (char)flag;
    return 0;
}
static PyObject *get_grad(HmTensor *t, void *c) {
    (void)c;
    if (!t->grad) Py_RETURN_NONE;
    Py_INCREF(t->grad);
    return t->grad;
}
static int set_grad(HmTensor *t, PyObject *v, void *c) {
    (void)c;
    if (v && v != Py_None) {
        if (!hm_is_tensor(v)) {
            PyErr_Format(PyExc_TypeError, "grad must be a hepml.Tensor or None, got %s", Py_TYPE(v)->tp_name);
            return -1;
        }
        if (!PyArray_SAMESHAPE(HM_ARR(v), t->arr)) {
            char a[128], b[128];
            PyErr_Format(PyExc_ValueError, "grad must have the tensor's shape %s, got %s",
                         hm_shape_str(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), a, sizeof a),
                         hm_shape_str(HM_NDIM(v), HM_SHAPE(v), b, sizeof b));
            return -1;
        }
        Py_INCREF(v);
        Py_XSETREF(t->grad, v);
    } else {
        Py_CLEAR(t->grad);
    }
    return 0;
}
static PyObject *get_grad_fn(HmTensor *t, void *c) {
    (void)c;
    if (!t->grad_fn) Py_RETURN_NONE;
    Py_INCREF(t->grad_fn);
    return t->grad_fn;
}
static PyObject *get_is_leaf(HmTensor *t, void *c) { (void)c; return PyBool_FromLong(t->grad_fn == NULL); }
static PyObject *get_version(HmTensor *t, void *c) { (void)c; return PyLong_FromUnsignedLong(t->version); }
static PyObject *get_array(HmTensor *t, void *c) { (void)c; Py_INCREF(t->arr); return (PyObject *)t->arr; }

static PyGetSetDef tensor_getset[] = {
    {"shape", (getter)get_shape, NULL, "the tensor's shape, a tuple", NULL},
    {"ndim", (getter)get_ndim, NULL, "number of dimensions", NULL},
    {"dtype", (getter)get_dtype, NULL, "numpy dtype of the storage (float32, bool or int64)", NULL},
    {"requires_grad", (getter)get_requires_grad, (setter)set_requires_grad, "whether gradients flow to this tensor", NULL},
    {"grad", (getter)get_grad, (setter)set_grad, "accumulated gradient (a Tensor) or None", NULL},
    {"grad_fn", (getter)get_grad_fn, NULL, "the autograd node that made this tensor, or None for a leaf", NULL},
    {"is_leaf", (getter)get_is_leaf, NULL, "True unless the tensor is the result of a recorded operation", NULL},
    {"_version", (getter)get_version, NULL, "in-place modification counter", NULL},
    {"_array", (getter)get_array, NULL, "the NumPy storage (shared, zero-copy)", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* -------------------------------------------------------------- methods */

static PyObject *t_numpy(HmTensor *t, PyObject *noargs) {
    (void)noargs;
    Py_INCREF(t->arr);
    return (PyObject *)t->arr;
}

static PyObject *t_array(HmTensor *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"dtype", "copy", NULL};
    PyObject *dtype = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:__array__", kwlist, &dtype, &copy)) return NULL;
    if (dtype == Py_None && copy != Py_True) { Py_INCREF(t->arr); return (PyObject *)t->arr; }
    PyArray_Descr *d = NULL;
    if (dtype != Py_None && !PyArray_DescrConverter(dtype, &d)) return NULL;
    if (!d) { d = PyArray_DESCR(t->arr); Py_INCREF(d); }
    return PyArray_FromArray(t->arr, d, NPY_ARRAY_ENSURECOPY);
}

static PyObject *t_numel(HmTensor *t, PyObject *noargs) {
    (void)noargs;
    return PyLong_FromSsize_t(PyArray_SIZE(t->arr));
}

static PyObject *t_item(HmTensor *t, PyObject *noargs) {
    (void)noargs;
    if (PyArray_SIZE(t->arr) != 1) {
        char b[128];
        PyErr_Format(PyExc_ValueError, "item(): only a tensor with one element can be converted to a Python number, "
                     "this one has shape %s", hm_shape_str(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), b, sizeof b));
        return NULL;
    }
    switch (PyArray_TYPE(t->arr)) {
    case NPY_FLOAT32: return PyFloat_FromDouble(*(float *)PyArray_DATA(t->arr));
    case NPY_INT64: return PyLong_FromLongLong(*(int64_t *)PyArray_DATA(t->arr));
    default: return PyBool_FromLong(*(npy_bool *)PyArray_DATA(t->arr));
    }
}

static PyObject *t_detach(HmTensor *t, PyObject *noargs) {
    (void)noargs;
    Py_INCREF(t->arr);
    return hm_wrap(t->arr); /* shares storage, no history */
}

static PyObject *t_requires_grad_(HmTensor *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"requires_grad", NULL};
    PyObject *flag = Py_True;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:requires_grad_", kwlist, &flag)) return NULL;
    if (set_requires_grad(t, flag, NULL) < 0) return NULL;
    Py_INCREF(t);
    return (PyObject *)t;
}

static PyObject *t_retain_grad(HmTensor *t, PyObject *noargs) {
    (void)noargs;
    if (!t->requires_grad) {
        PyErr_SetString(PyExc_RuntimeError, "retain_grad(): the tensor does not require grad");
        return NULL;
    }
    if (t->grad_fn) {
        PyErr_SetString(PyExc_NotImplementedError,
                        "retain_grad() on non-leaf tensors is not supported by hepml; compute the gradient with "
                        "hepml.autograd.grad or make the tensor a leaf with .detach().requires_grad_()");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *t_backward(HmTensor *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"gradient", "retain_graph", NULL};
    PyObject *gradient = Py_None;
    int retain = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op:backward", kwlist, &gradient, &retain)) return NULL;
    if (!t->requires_grad) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backward(): this tensor does not require grad and has no grad_fn (did every input "
                        "have requires_grad=False, or was it computed under hepml.no_grad()?)");
        return NULL;
    }
    PyArrayObject *g;
    if (gradient == Py_None) {
        if (PyArray_SIZE(t->arr) != 1) {
            char b[128];
            PyErr_Format(PyExc_RuntimeError,
                         "backward(): grad can be implicitly created only for scalar outputs; this output has "
                         "shape %s, pass gradient= of that shape",
                         hm_shape_str(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), b, sizeof b));
            return NULL;
        }
        g = hm_empty(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), NPY_FLOAT32);
        if (!g) return NULL;
        AF32(g)[0] = 1.0f;
    } else {
        HmTensor *gt = hm_as_float_tensor(gradient, "backward", "gradient");
        if (!gt) return NULL;
        if (!PyArray_SAMESHAPE(gt->arr, t->arr)) {
            char a[128], b[128];
            PyErr_Format(PyExc_ValueError, "backward(): gradient has shape %s but the output has shape %s",
                         hm_shape_str(PyArray_NDIM(gt->arr), PyArray_DIMS(gt->arr), a, sizeof a),
                         hm_shape_str(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), b, sizeof b));
            Py_DECREF(gt);
            return NULL;
        }
        g = hm_array_copy(gt->arr, NPY_FLOAT32);
        Py_DECREF(gt);
        if (!g) return NULL;
    }
    int rc = hm_backward(t, g, retain);
    Py_DECREF(g);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static Py_ssize_t tensor_len(HmTensor *t) {
    if (PyArray_NDIM(t->arr) == 0) {
        PyErr_SetString(PyExc_TypeError, "len() of a 0-d tensor");
        return -1;
    }
    return PyArray_DIM(t->arr, 0);
}

static PyMappingMethods tensor_as_mapping = {(lenfunc)tensor_len, NULL, NULL};

static PyObject *tensor_float(HmTensor *t) {
    PyObject *v = t_item(t, NULL);
    if (!v) return NULL;
    PyObject *f = PyNumber_Float(v);
    Py_DECREF(v);
    return f;
}
static PyObject *tensor_int(HmTensor *t) {
    PyObject *v = t_item(t, NULL);
    if (!v) return NULL;
    PyObject *f = PyNumber_Long(v);
    Py_DECREF(v);
    return f;
}
static int tensor_bool(HmTensor *t) {
    if (PyArray_SIZE(t->arr) != 1) {
        char b[128];
        PyErr_Format(PyExc_RuntimeError, "the truth value of a tensor with shape %s is ambiguous; use .any() or .all()",
                     hm_shape_str(PyArray_NDIM(t->arr), PyArray_DIMS(t->arr), b, sizeof b));
        return -1;
    }
    PyObject *v = t_item(t, NULL);
    if (!v) return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static PyNumberMethods tensor_as_number = {
    .nb_bool = (inquiry)tensor_bool,
    .nb_int = (unaryfunc)tensor_int,
    .nb_float = (unaryfunc)tensor_float,
};

static PyMethodDef tensor_methods[] = {
    {"numpy", (PyCFunction)t_numpy, METH_NOARGS, "The values as a NumPy array sharing this tensor's memory."},
    {"__array__", (PyCFunction)(void (*)(void))t_array, METH_VARARGS | METH_KEYWORDS, NULL},
    {"numel", (PyCFunction)t_numel, METH_NOARGS, "Number of elements."},
    {"item", (PyCFunction)t_item, METH_NOARGS, "The value of a one-element tensor as a Python number."},
    {"detach", (PyCFunction)t_detach, METH_NOARGS, "A tensor sharing storage, cut from the autograd graph."},
    {"requires_grad_", (PyCFunction)(void (*)(void))t_requires_grad_, METH_VARARGS | METH_KEYWORDS,
     "Set requires_grad in place (leaves only); returns self."},
    {"retain_grad", (PyCFunction)t_retain_grad, METH_NOARGS, NULL},
    {"backward", (PyCFunction)(void (*)(void))t_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(gradient=None, retain_graph=False): accumulate d(self)/d(leaf) into every leaf's .grad."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject HmTensor_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hepml._C.TensorBase",
    .tp_basicsize = sizeof(HmTensor),
    .tp_dealloc = (destructor)tensor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C storage of hepml.Tensor: a contiguous NumPy array plus autograd fields.",
    .tp_traverse = (traverseproc)tensor_traverse,
    .tp_clear = (inquiry)tensor_clear,
    .tp_weaklistoffset = offsetof(HmTensor, weakreflist),
    .tp_dictoffset = offsetof(HmTensor, dict),
    .tp_methods = tensor_methods,
    .tp_getset = tensor_getset,
    .tp_as_mapping = &tensor_as_mapping,
    .tp_as_number = &tensor_as_number,
    .tp_new = tensor_new,
};

/* hepml registers its Python subclass so results of ops are hepml.Tensor. */
PyObject *hm_py_set_tensor_class(PyObject *self, PyObject *cls) {
    (void)self;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &HmTensor_Type)) {
        PyErr_SetString(PyExc_TypeError, "_set_tensor_class expects a subclass of TensorBase");
        return NULL;
    }
    Py_INCREF(cls);
    hm_tensor_class = (PyTypeObject *)cls;
    Py_RETURN_NONE;
}

/* Mark an in-place modification (used by ops that write into a tensor). */
PyObject *hm_py_bump_version(PyObject *self, PyObject *t) {
    (void)self;
    if (!hm_is_tensor(t)) { PyErr_SetString(PyExc_TypeError, "expected a tensor"); return NULL; }
    ((HmTensor *)t)->version++;
    Py_RETURN_NONE;
}
