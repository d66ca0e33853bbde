/* Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div. */
#include "hm.h"
#include "broadcast.h"
#include "elementwise.h"

typedef struct {
    int ndim;
    int64_t shape[HM_MAX_DIMS], sa[HM_MAX_DIMS], sb[HM_MAX_DIMS];
} bcast_plan;

static void make_plan(bcast_plan *p, int nout, const npy_intp *out, PyArrayObject *a, PyArrayObject *b) {
    int64_t as[HM_MAX_DIMS], bs[HM_MAX_DIMS];
    p->ndim = nout;
    for (int d = 0; d < nout; d++) p->shape[d] = out[d];
    for (int d = 0; d < PyArray_NDIM(a); d++) as[d] = PyArray_DIM(a, d);
    for (int d = 0; d < PyArray_NDIM(b); d++) bs[d] = PyArray_DIM(b, d);
    hm_broadcast_strides(p->sa, nout, p->shape, PyArray_NDIM(a), as);
    hm_broadcast_strides(p->sb, nout, p->shape, PyArray_NDIM(b), bs);
}

static const char *binary_name(int op) {
    static const char *names[] = {"add", "sub", "mul", "div"};
    return names[op];
}

static int binary_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int op = (int)n->i[0];
    if (op == HM_ADD) {
        /* the gradient passes through; the engine sums it down to each shape */
        if (n->inputs[0]) { Py_INCREF(g); gin[0] = g; }
        if (n->inputs[1]) { Py_INCREF(g); gin[1] = g; }
        return 0;
    }
    PyArrayObject *a = hm_node_saved(n, 0), *b = a ? hm_node_saved(n, 1) : NULL;
    if (!b) return -1;
    bcast_plan p;
    make_plan(&p, PyArray_NDIM(g), PyArray_DIMS(g), a, b);
    PyArrayObject *da = NULL, *db = NULL;
    if (n->inputs[0] && !(da = hm_empty_like(g))) return -1;
    if (n->inputs[1] && !(db = hm_empty_like(g))) { Py_XDECREF(da); return -1; }
    hm_binary_backward(da ? AF32(da) : NULL, db ? AF32(db) : NULL, AF32(g), AF32(a), AF32(b), p.ndim, p.shape, p.sa,
                       p.sb, op);
    gin[0] = da;
    gin[1] = db;
    return 0;
}

static const char *backward_names[] = {"AddBackward", "SubBackward", "MulBackward", "DivBackward"};

/* Shared by the four ops: convert operands, broadcast, run, record. */
static PyObject *binary(PyObject *args, int op) {
    PyObject *ao, *bo;
    const char *name = binary_name(op);
    if (!PyArg_UnpackTuple(args, name, 2, 2, &ao, &bo)) return NULL;
    HmTensor *a = hm_as_float_tensor(ao, name, "input");
    if (!a) return NULL;
    HmTensor *b = hm_as_float_tensor(bo, name, "other");
    if (!b) { Py_DECREF(a); return NULL; }
    int nout;
    npy_intp out_shape[HM_MAX_DIMS];
    PyObject *result = NULL;
    if (hm_broadcast_shapes(HM_NDIM(a), HM_SHAPE(a), HM_NDIM(b), HM_SHAPE(b), &nout, out_shape, name, "input",
                            "other") < 0)
        goto done;
    PyArrayObject *out = hm_empty(nout, out_shape, NPY_FLOAT32);
    if (!out) goto done;
    bcast_plan p;
    make_plan(&p, nout, out_shape, a->arr, b->arr);
    hm_binary_forward(AF32(out), HM_F32(a), HM_F32(b), p.ndim, p.shape, p.sa, p.sb, op);
    PyObject *inputs[2] = {(PyObject *)a, (PyObject *)b};
    HmNode *node = hm_node_new(backward_names[op], binary_backward, inputs, 2);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = op;
        if (op != HM_ADD && (hm_node_save(node, (PyObject *)a) < 0 || hm_node_save(node, (PyObject *)b) < 0)) {
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

static PyObject *py_add(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_ADD); }
static PyObject *py_sub(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_SUB); }
static PyObject *py_mul(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_MUL); }
static PyObject *py_div(PyObject *self, PyObject *args) { (void)self; return binary(args, HM_DIV); }

PyMethodDef hm_methods_elementwise[] = {
    {"add", py_add, METH_VARARGS, "add(input, other): input + other with broadcasting."},
    {"sub", py_sub, METH_VARARGS, "sub(input, other): input - other with broadcasting."},
    {"mul", py_mul, METH_VARARGS, "mul(input, other): input * other with broadcasting."},
    {"div", py_div, METH_VARARGS, "div(input, other): input / other with broadcasting."},
    {NULL, NULL, 0, NULL},
};
