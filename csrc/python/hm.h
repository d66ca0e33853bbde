/*
 * The binding layer's shared API: the Tensor type, autograd nodes, allocation
 * and argument helpers. Every ops_<family>.c includes this header.
 *
 * Ownership rules, in one place:
 * - A Tensor owns a reference to its NumPy array (always C-contiguous, aligned,
 *   writeable; dtype float32, bool or int64).
 * - A Tensor made by a differentiable op owns a reference to its grad_fn node.
 * - A node owns references to its input tensors (the ones that need gradients)
 *   and to its saved objects. It never references its own output tensor, so
 *   graphs have no reference cycles and are freed by reference counting alone.
 *   Ops that need their output in backward save the output's *array*.
 */
#ifndef HM_H
#define HM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL hepml_ARRAY_API
#ifndef HM_MODULE_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <stdint.h>

#define HM_MAX_DIMS 8
#define HM_MAX_SAVED 8

/* ------------------------------------------------------------------ tensor */

typedef struct {
    PyObject_HEAD
    PyArrayObject *arr;   /* storage */
    PyObject *grad;       /* HmTensor or NULL */
    PyObject *grad_fn;    /* HmNode or NULL (leaf) */
    char requires_grad;
    char retains_grad;
    uint32_t version;     /* bumped by every in-place modification */
    PyObject *weakreflist;
    PyObject *dict;       /* attribute dict, so Python subclasses (Parameter) can add fields */
} HmTensor;

extern PyTypeObject HmTensor_Type;
/* The class new tensors are made of: hepml.Tensor once Python registered it. */
extern PyTypeObject *hm_tensor_class;

static inline int hm_is_tensor(PyObject *o) { return PyObject_TypeCheck(o, &HmTensor_Type); }
#define HM_ARR(t) (((HmTensor *)(t))->arr)
#define HM_F32(t) ((float *)PyArray_DATA(HM_ARR(t)))
#define HM_NDIM(t) PyArray_NDIM(HM_ARR(t))
#define HM_SHAPE(t) PyArray_DIMS(HM_ARR(t))
#define HM_NUMEL(t) ((int64_t)PyArray_SIZE(HM_ARR(t)))
#define HM_DTYPE(t) PyArray_TYPE(HM_ARR(t))
#define AF32(a) ((float *)PyArray_DATA(a))

/* Wrap an array (steals the reference) into a new tensor without grad. */
PyObject *hm_wrap(PyArrayObject *arr);
/* Wrap and attach a node (steals both; node may be NULL). The result requires
 * grad iff node != NULL. */
PyObject *hm_wrap_with_node(PyArrayObject *arr, PyObject *node);

/* --------------------------------------------------------------- allocation */

/* New C-contiguous array from hepml's buffer pool: repeated steps of the same
 * shapes reuse the same pages instead of faulting fresh ones in. Contents
 * are uninitialised. Returns NULL with MemoryError/ValueError set. */
PyArrayObject *hm_empty(int ndim, const npy_intp *shape, int typenum);
PyArrayObject *hm_zeros(int ndim, const npy_intp *shape, int typenum);
static inline PyArrayObject *hm_empty_like(PyArrayObject *a) {
    return hm_empty(PyArray_NDIM(a), PyArray_DIMS(a), PyArray_TYPE(a));
}
/* A pooled, contiguous copy of any array, converted to typenum. */
PyArrayObject *hm_array_copy(PyArrayObject *a, int typenum);
/* Scratch memory for kernels (pooled; release with hm_scratch_free). */
void *hm_scratch(size_t bytes);
void hm_scratch_free(void *p);

/* ------------------------------------------------------------------ autograd */

typedef struct HmNode HmNode;
/* Compute the gradients of a node's inputs. grad_in[i] is only requested when
 * node->inputs[i] != NULL; the function stores a new reference there (an array
 * of the input's shape, or of the output's broadcast shape, which the engine
 * sums down to the input's shape). Return 0, or -1 with a Python error set. */
typedef int (*hm_backward_fn)(HmNode *node, PyArrayObject *grad_out, PyArrayObject **grad_in);

struct HmNode {
    PyObject_HEAD
    const char *name;          /* e.g. "MulBackward" */
    hm_backward_fn backward;
    int n_inputs;
    PyObject **inputs;         /* HmTensor* or NULL when that input needs no gradient */
    int n_saved;
    PyObject *saved[HM_MAX_SAVED];        /* arrays or tensors saved by forward */
    uint32_t saved_version[HM_MAX_SAVED]; /* for tensors: version at save time */
    double f[8];               /* scalar parameters of the op */
    int64_t i[16];             /* integer parameters of the op */
    PyObject *extra;           /* any other Python object the op needs (owned) */
    void *ctx;                 /* raw memory owned by the node, freed with ctx_free */
    void (*ctx_free)(void *);
    int out_ndim;
    npy_intp out_shape[HM_MAX_DIMS];
    int out_dtype;
    char freed;                /* saved objects released after a backward */
    /* engine bookkeeping */
    PyArrayObject *grad_acc;
    int64_t pending;
    uint64_t seq;              /* creation order (for debugging and stable printing) */
    uint64_t gen;              /* which backward pass last visited this node */
};

extern PyTypeObject HmNode_Type;

/* Grad mode (hepml.no_grad()). */
int hm_grad_enabled(void);

/* Does an op with these inputs record a node? (grad mode on and any input
 * requires grad). Non-tensor entries (NULL) are allowed. */
int hm_any_requires_grad(PyObject **tensors, int n);

/* Make a node for an op with n inputs, or return NULL (with no error set) when
 * no input needs a gradient or grad mode is off. On allocation failure returns
 * NULL with an error set: check PyErr_Occurred(). */
HmNode *hm_node_new(const char *name, hm_backward_fn backward, PyObject **inputs, int n);
/* Save an array or a tensor (new reference taken). Tensors are version-checked. */
int hm_node_save(HmNode *node, PyObject *obj);
/* Saved object k as an array (borrowed), or NULL with an error if the graph was
 * freed or a saved tensor was modified in place since. */
PyArrayObject *hm_node_saved(HmNode *node, int k);

/* Run backward from `root` with gradient `grad` (an array of root's shape). */
int hm_backward(HmTensor *root, PyArrayObject *grad, int retain_graph);

/* --------------------------------------------------------- argument helpers */

/* Borrow-or-convert: returns a NEW reference to a tensor for `obj` (a tensor,
 * NumPy array, list, or number). Non-tensors are converted to float32 unless
 * they are bool arrays (kept bool). `argname` names the argument in errors. */
HmTensor *hm_as_tensor(PyObject *obj, const char *opname, const char *argname);
/* Same, but the result is float32 (bool/int64 tensors are converted, losing
 * their grad connection, which they cannot have anyway). */
HmTensor *hm_as_float_tensor(PyObject *obj, const char *opname, const char *argname);
/* Shape as "(2, 3)" into buf. */
const char *hm_shape_str(int ndim, const npy_intp *shape, char *buf, size_t n);
/* Broadcast two shapes; on failure sets ValueError naming op and arguments. */
int hm_broadcast_shapes(int na, const npy_intp *a, int nb, const npy_intp *b, int *nout, npy_intp *out,
                        const char *opname, const char *aname, const char *bname);
/* Normalise a dim argument (None, int or sequence of ints) into a bitmask over
 * ndim dims; None selects all. Negative dims count from the end. */
int hm_parse_dims(PyObject *dim, int ndim, const char *opname, uint32_t *mask);
/* Normalise one dim (negative allowed); error names opname. */
int hm_parse_dim(PyObject *dim, int ndim, const char *opname, int *out);
/* Require float32. */
int hm_require_float(HmTensor *t, const char *opname, const char *argname);
/* Sum `g` (shape gshape) down to `shape` over broadcast dimensions. Returns a
 * new array (or a new reference to g when the shapes already agree). */
PyArrayObject *hm_reduce_grad_to_shape(PyArrayObject *g, int ndim, const npy_intp *shape);

/* In-place ops: refuse on tensors that require grad while grad mode is on, and
 * on read-only memory. */
int hm_check_inplace(HmTensor *t, const char *opname);
/* A size argument: an int or a sequence of non-negative ints. */
int hm_parse_shape(PyObject *obj, const char *opname, int *ndim, npy_intp *shape);
/* A dtype argument: None (float32) or one of float32 / int64 / bool. */
int hm_parse_dtype(PyObject *obj, const char *opname, int *typenum);

/* The RNG state (seed, offset) shared by every random op: reserve n counter
 * values and get the offset to use. */
void hm_rng_reserve(uint64_t n, uint64_t *seed, uint64_t *offset);

#endif
