/*
 * The autograd engine: nodes, grad mode, and the reverse walk.
 *
 * Each differentiable op records one node holding its backward function, its
 * inputs that need gradients, and what it saved. backward() collects the
 * nodes reachable from the output, counts for each how many consumers must
 * deliver a gradient first, and runs them in that dependency order (Kahn's
 * algorithm), so a node runs once with the full sum of its output gradients.
 */
#include "hm.h"
#include "broadcast.h"
#include <string.h>

static int grad_enabled = 1;
static uint64_t node_counter = 0;
static uint64_t backward_generation = 0;

int hm_grad_enabled(void) { return grad_enabled; }

PyObject *hm_py_set_grad_enabled(PyObject *self, PyObject *arg) {
    (void)self;
    int prev = grad_enabled;
    int flag = PyObject_IsTrue(arg);
    if (flag < 0) return NULL;
    grad_enabled = flag;
    return PyBool_FromLong(prev);
}

PyObject *hm_py_is_grad_enabled(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyBool_FromLong(grad_enabled);
}

/* ------------------------------------------------------------------ nodes */

static void node_release_saved(HmNode *n) {
    for (int k = 0; k < n->n_saved; k++) Py_CLEAR(n->saved[k]);
    Py_CLEAR(n->extra);
    if (n->ctx && n->ctx_free) n->ctx_free(n->ctx);
    n->ctx = NULL;
}

static void node_dealloc(HmNode *n) {
    PyObject_GC_UnTrack(n);
    Py_TRASHCAN_BEGIN(n, node_dealloc)
    node_release_saved(n);
    if (n->inputs) {
        for (int k = 0; k < n->n_inputs; k++) Py_CLEAR(n->inputs[k]);
        PyMem_Free(n->inputs);
    }
    Py_CLEAR(n->grad_acc);
    Py_TYPE(n)->tp_free((PyObject *)n);
    Py_TRASHCAN_END
}

static int node_traverse(HmNode *n, visitproc visit, void *arg) {
    for (int k = 0; k < n->n_inputs; k++) Py_VISIT(n->inputs[k]);
    for (int k = 0; k < n->n_saved; k++) Py_VISIT(n->saved[k]);
    Py_VISIT(n->extra);
    return 0;
}

static int node_clear(HmNode *n) {
    for (int k = 0; k < n->n_inputs; k++) Py_CLEAR(n->inputs[k]);
    node_release_saved(n);
    return 0;
}

static PyObject *node_repr(HmNode *n) { return PyUnicode_FromFormat("<%s>", n->name); }

static PyObject *node_name(HmNode *n, PyObject *noargs) {
    (void)noargs;
    return PyUnicode_FromString(n->name);
}

/* next_functions: the nodes (or None for leaves) of each input, as in torch. */
static PyObject *node_next(HmNode *n, void *c) {
    (void)c;
    PyObject *tup = PyTuple_New(n->n_inputs);
    if (!tup) return NULL;
    for (int k = 0; k < n->n_inputs; k++) {
        PyObject *item = Py_None;
        if (n->inputs[k] && ((HmTensor *)n->inputs[k])->grad_fn) item = ((HmTensor *)n->inputs[k])->grad_fn;
        Py_INCREF(item);
        PyTuple_SET_ITEM(tup, k, item);
    }
    return tup;
}

static PyMethodDef node_methods[] = {
    {"name", (PyCFunction)node_name, METH_NOARGS, "The op's backward name."},
    {NULL, NULL, 0, NULL},
};
static PyGetSetDef node_getset[] = {
    {"next_functions", (getter)node_next, NULL, "grad_fn of each input (None for leaves or inputs without grad)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject HmNode_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hepml._C.Node",
    .tp_basicsize = sizeof(HmNode),
    .tp_dealloc = (destructor)node_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An autograd graph node (the grad_fn of a tensor).",
    .tp_traverse = (traverseproc)node_traverse,
    .tp_clear = (inquiry)node_clear,
    .tp_repr = (reprfunc)node_repr,
    .tp_methods = node_methods,
    .tp_getset = node_getset,
};

int hm_any_requires_grad(PyObject **tensors, int n) {
    if (!grad_enabled) return 0;
    for (int k = 0; k < n; k++)
        if (tensors[k] && hm_is_tensor(tensors[k]) && ((HmTensor *)tensors[k])->requires_grad) return 1;
    return 0;
}

HmNode *hm_node_new(const char *name, hm_backward_fn backward, PyObject **inputs, int n) {
    if (!hm_any_requires_grad(inputs, n)) return NULL;
    HmNode *node = PyObject_GC_New(HmNode, &HmNode_Type);
    if (!node) return NULL;
    /* zero every field after the header */
    memset((char *)node + sizeof(PyObject), 0, sizeof(HmNode) - sizeof(PyObject));
    node->name = name;
    node->backward = backward;
    node->n_inputs = n;
    node->inputs = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(PyObject *));
    if (!node->inputs) { Py_DECREF(node); PyErr_NoMemory(); return NULL; }
    for (int k = 0; k < n; k++) {
        if (inputs[k] && hm_is_tensor(inputs[k]) && ((HmTensor *)inputs[k])->requires_grad) {
            Py_INCREF(inputs[k]);
            node->inputs[k] = inputs[k];
        }
    }
    node->seq = ++node_counter;
    PyObject_GC_Track(node);
    return node;
}

int hm_node_save(HmNode *node, PyObject *obj) {
    if (node->n_saved >= HM_MAX_SAVED) {
        PyErr_SetString(PyExc_SystemError, "hepml internal error: too many saved objects in one node");
        return -1;
    }
    Py_INCREF(obj);
    node->saved_version[node->n_saved] = hm_is_tensor(obj) ? ((HmTensor *)obj)->version : 0;
    node->saved[node->n_saved++] = obj;
    return 0;
}

PyArrayObject *hm_node_saved(HmNode *node, int k) {
    if (node->freed || k >= node->n_saved || !node->saved[k]) {
        PyErr_Format(PyExc_RuntimeError,
                     "Trying to backward through the graph a second time (in %s): its saved tensors were freed "
                     "after the first backward. Pass retain_graph=True to the first backward() if you need to "
                     "call it twice.", node->name);
        return NULL;
    }
    PyObject *o = node->saved[k];
    if (hm_is_tensor(o)) {
        if (((HmTensor *)o)->version != node->saved_version[k]) {
            PyErr_Format(PyExc_RuntimeError,
                         "a tensor needed by %s for the gradient was modified in place after it was used "
                         "(version %u, saved at %u); use an out-of-place operation instead",
                         node->name, ((HmTensor *)o)->version, node->saved_version[k]);
            return NULL;
        }
        return HM_ARR(o);
    }
    return (PyArrayObject *)o;
}

/* ----------------------------------------------------------------- engine */

typedef struct {
    HmNode **items;
    Py_ssize_t len, cap;
} node_vec;

static int vec_push(node_vec *v, HmNode *n) {
    if (v->len == v->cap) {
        Py_ssize_t cap = v->cap ? 2 * v->cap : 64;
        HmNode **p = PyMem_Realloc(v->items, (size_t)cap * sizeof(HmNode *));
        if (!p) { PyErr_NoMemory(); return -1; }
        v->items = p;
        v->cap = cap;
    }
    v->items[v->len++] = n;
    return 0;
}

static npy_intp numel_of(int nd, const npy_intp *shape) {
    npy_intp n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    return n;
}

/* Reduce a gradient that arrived in the output's broadcast shape down to the
 * input's shape. Returns a new reference. */
PyArrayObject *hm_reduce_grad_to_shape(PyArrayObject *g, int ndim, const npy_intp *shape) {
    int gnd = PyArray_NDIM(g);
    int same = gnd == ndim;
    for (int d = 0; same && d < ndim; d++) same = PyArray_DIM(g, d) == shape[d];
    if (same) { Py_INCREF(g); return g; }
    if (numel_of(gnd, PyArray_DIMS(g)) == numel_of(ndim, shape) && gnd != ndim) {
        /* only size-1 dims differ: a reshape */
        PyArrayObject *out = hm_empty(ndim, shape, NPY_FLOAT32);
        if (!out) return NULL;
        memcpy(PyArray_DATA(out), PyArray_DATA(g), (size_t)PyArray_NBYTES(out));
        return out;
    }
    if (gnd < ndim) {
        PyErr_SetString(PyExc_SystemError, "hepml internal error: gradient has fewer dims than its input");
        return NULL;
    }
    int64_t gs[HM_MAX_DIMS], s[HM_MAX_DIMS];
    for (int d = 0; d < gnd; d++) gs[d] = PyArray_DIM(g, d);
    for (int d = 0; d < ndim; d++) s[d] = shape[d];
    PyArrayObject *out = hm_empty(ndim, shape, NPY_FLOAT32);
    if (!out) return NULL;
    hm_sum_to_shape(AF32(out), AF32(g), gnd, gs, ndim, s);
    return out;
}

/* acc += g, taking ownership of g when acc is empty; copy-on-write when the
 * accumulator array is shared with anyone else. */
static int accumulate(PyArrayObject **acc, PyArrayObject *g) {
    if (!*acc) {
        Py_INCREF(g);
        *acc = g;
        return 0;
    }
    if (Py_REFCNT(*acc) > 1 || !PyArray_ISWRITEABLE(*acc)) {
        PyArrayObject *c = hm_array_copy(*acc, NPY_FLOAT32);
        if (!c) return -1;
        Py_SETREF(*acc, c);
    }
    hm_add_inplace(AF32(*acc), AF32(g), (int64_t)PyArray_SIZE(g));
    return 0;
}

static int accumulate_leaf(HmTensor *leaf, PyArrayObject *g) {
    if (!leaf->grad) {
        PyArrayObject *owned = g;
        Py_INCREF(owned);
        PyObject *t = hm_wrap(owned);
        if (!t) return -1;
        leaf->grad = t;
        return 0;
    }
    HmTensor *gt = (HmTensor *)leaf->grad;
    if (!PyArray_SAMESHAPE(gt->arr, g)) {
        PyErr_SetString(PyExc_RuntimeError, "existing .grad has a different shape from the new gradient");
        return -1;
    }
    if (Py_REFCNT(gt->arr) > 1 || Py_REFCNT(gt) > 1) {
        /* The grad tensor or its storage is shared (another leaf got the same
         * gradient array, or the user holds it): make a fresh sum instead of
         * writing into shared memory. */
        PyArrayObject *c = hm_array_copy(gt->arr, NPY_FLOAT32);
        if (!c) return -1;
        hm_add_inplace(AF32(c), AF32(g), (int64_t)PyArray_SIZE(g));
        PyObject *t = hm_wrap(c);
        if (!t) return -1;
        Py_SETREF(leaf->grad, t);
        return 0;
    }
    hm_add_inplace(AF32(gt->arr), AF32(g), (int64_t)PyArray_SIZE(g));
    gt->version++;
    return 0;
}

int hm_backward(HmTensor *root, PyArrayObject *grad, int retain_graph) {
    if (!root->grad_fn) {
        /* a leaf that requires grad: its gradient is the given one */
        return accumulate_leaf(root, grad);
    }
    uint64_t gen = ++backward_generation;
    node_vec all = {0}, ready = {0};
    int rc = -1;

    /* 1. collect reachable nodes, counting consumers */
    HmNode *first = (HmNode *)root->grad_fn;
    first->gen = gen;
    first->pending = 0;
    if (vec_push(&all, first) < 0) goto done;
    for (Py_ssize_t k = 0; k < all.len; k++) {
        HmNode *n = all.items[k];
        for (int i = 0; i < n->n_inputs; i++) {
            HmTensor *in = (HmTensor *)n->inputs[i];
            if (!in || !in->grad_fn) continue;
            HmNode *m = (HmNode *)in->grad_fn;
            if (m->gen != gen) {
                m->gen = gen;
                m->pending = 0;
                Py_CLEAR(m->grad_acc);
                if (vec_push(&all, m) < 0) goto done;
            }
            m->pending++;
        }
    }

    /* 2. run in dependency order */
    Py_CLEAR(first->grad_acc);
    Py_INCREF(grad);
    first->grad_acc = grad;
    if (vec_push(&ready, first) < 0) goto done;
    while (ready.len > 0) {
        HmNode *n = ready.items[--ready.len];
        PyArrayObject *gout = n->grad_acc;
        n->grad_acc = NULL;
        if (gout && n->freed) {
            Py_DECREF(gout);
            hm_node_saved(n, 0); /* sets the "second time" error */
            goto done;
        }
        PyArrayObject *stack_gin[8];
        PyArrayObject **gin = n->n_inputs <= 8 ? stack_gin
                              : PyMem_Calloc((size_t)n->n_inputs, sizeof(PyArrayObject *));
        if (!gin) { Py_XDECREF(gout); PyErr_NoMemory(); goto done; }
        memset(gin, 0, sizeof(PyArrayObject *) * (size_t)(n->n_inputs <= 8 ? 8 : n->n_inputs));
        int ok = 0;
        if (gout) ok = n->backward(n, gout, gin);
        Py_XDECREF(gout);
        for (int i = 0; i < n->n_inputs && ok == 0; i++) {
            HmTensor *in = (HmTensor *)n->inputs[i];
            if (!in || !gin[i]) continue;
            PyArrayObject *g = hm_reduce_grad_to_shape(gin[i], PyArray_NDIM(in->arr), PyArray_DIMS(in->arr));
            if (!g) { ok = -1; break; }
            if (in->grad_fn) ok = accumulate(&((HmNode *)in->grad_fn)->grad_acc, g);
            else ok = accumulate_leaf(in, g);
            Py_DECREF(g);
        }
        for (int i = 0; i < n->n_inputs; i++) Py_XDECREF(gin[i]);
        if (gin != stack_gin) PyMem_Free(gin);
        if (ok != 0) goto done;
        if (!retain_graph) {
            node_release_saved(n);
            n->freed = 1;
        }
        for (int i = 0; i < n->n_inputs; i++) {
            HmTensor *in = (HmTensor *)n->inputs[i];
            if (!in || !in->grad_fn) continue;
            HmNode *m = (HmNode *)in->grad_fn;
            if (--m->pending == 0 && vec_push(&ready, m) < 0) goto done;
        }
    }
    rc = 0;
done:
    for (Py_ssize_t k = 0; k < all.len; k++) Py_CLEAR(all.items[k]->grad_acc);
    PyMem_Free(all.items);
    PyMem_Free(ready.items);
    return rc;
}
