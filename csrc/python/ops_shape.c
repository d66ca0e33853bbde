/*
 * Shape ops: reshape/flatten/squeeze/unsqueeze (zero-copy: a reshaped NumPy
 * view of the same contiguous storage), and copies made by the strided copy
 * kernel: permute/transpose, expand, repeat, flip, roll; block copies for
 * cat/stack/narrow/select. Gradients are the inverse data movement.
 */
#include "hm.h"
#include "shape.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void contiguous_strides(int nd, const npy_intp *shape, int64_t *stride) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) { stride[d] = s; s *= shape[d]; }
}

static int64_t numel_of(int nd, const npy_intp *shape) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    return n;
}

static int elsize_of(HmTensor *x) { return (int)PyArray_ITEMSIZE(x->arr); }

static HmNode *node1(const char *name, hm_backward_fn fn, HmTensor *x) {
    PyObject *in[1] = {(PyObject *)x};
    return hm_node_new(name, fn, in, 1);
}

/* ------------------------------------------------------- reshape family */

/* The gradient of a reshape is g with the input's shape. The engine may
 * write into gradient arrays it owns, so we hand it a copy, never a view of
 * g (a view's memory could be shared with another accumulator). */
static int reshape_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    npy_intp shape[HM_MAX_DIMS];
    int nd = (int)n->i[0];
    for (int d = 0; d < nd; d++) shape[d] = (npy_intp)n->i[1 + d];
    PyArrayObject *dx = hm_empty(nd, shape, NPY_FLOAT32);
    if (!dx) return -1;
    memcpy(PyArray_DATA(dx), PyArray_DATA(g), (size_t)PyArray_NBYTES(g));
    gin[0] = dx;
    return 0;
}

/* A tensor sharing x's storage with a new shape (same number of elements). */
static PyObject *reshape_to(HmTensor *x, int nd, npy_intp *shape, const char *nodename) {
    PyArray_Dims dims = {shape, nd};
    PyArrayObject *v = (PyArrayObject *)PyArray_Newshape(x->arr, &dims, NPY_CORDER);
    if (!v) return NULL;
    HmNode *node = node1(nodename, reshape_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(v); return NULL; }
    if (node) {
        node->i[0] = HM_NDIM(x);
        for (int d = 0; d < HM_NDIM(x); d++) node->i[1 + d] = HM_SHAPE(x)[d];
    }
    return hm_wrap_with_node(v, (PyObject *)node);
}

/* reshape(input, shape): one -1 is inferred, as torch. */
static PyObject *py_reshape(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *so;
    if (!PyArg_ParseTuple(args, "OO:reshape", &xo, &so)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "reshape", "input");
    if (!x) return NULL;
    PyObject *result = NULL, *seq = NULL;
    npy_intp shape[HM_MAX_DIMS];
    char b1[160], b2[160];
    if (PyLong_Check(so)) seq = PyTuple_Pack(1, so);
    else seq = PySequence_Fast(so, "reshape(): shape must be an int or a sequence of ints");
    if (!seq) goto done;
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(seq);
    if (nd > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "reshape(): at most %d dimensions, got %zd", HM_MAX_DIMS, nd);
        goto done;
    }
    int infer = -1;
    int64_t known = 1;
    for (Py_ssize_t k = 0; k < nd; k++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, k);
        Py_ssize_t v = PyNumber_Check(it) && !PyFloat_Check(it) ? PyNumber_AsSsize_t(it, PyExc_OverflowError) : -2;
        if (v == -1 && PyErr_Occurred()) goto done;
        if (v == -1) {
            if (infer >= 0) {
                PyErr_SetString(PyExc_ValueError, "reshape(): only one dimension can be inferred (-1)");
                goto done;
            }
            infer = (int)k;
            shape[k] = 1;
            continue;
        }
        if (v < 0) {
            PyErr_Format(PyExc_ValueError, "reshape(): sizes must be non-negative ints or -1, got %R at position %zd",
                         it, k);
            goto done;
        }
        shape[k] = v;
        known *= v;
    }
    int64_t n = HM_NUMEL(x);
    if (infer >= 0) {
        if (known == 0 || n % known != 0) {
            shape[infer] = -1;
            PyErr_Format(PyExc_ValueError, "reshape(): shape %s is invalid for an input of %lld elements (shape %s)",
                         hm_shape_str((int)nd, shape, b1, sizeof b1), (long long)n,
                         hm_shape_str(HM_NDIM(x), HM_SHAPE(x), b2, sizeof b2));
            goto done;
        }
        shape[infer] = n / known;
    } else if (known != n) {
        PyErr_Format(PyExc_ValueError, "reshape(): shape %s is invalid for an input of %lld elements (shape %s)",
                     hm_shape_str((int)nd, shape, b1, sizeof b1), (long long)n,
                     hm_shape_str(HM_NDIM(x), HM_SHAPE(x), b2, sizeof b2));
        goto done;
    }
    result = reshape_to(x, (int)nd, shape, "ReshapeBackward");
done:
    Py_XDECREF(seq);
    Py_DECREF(x);
    return result;
}

static int dim_arg(PyObject *o, int ndim, const char *opname, int *out) {
    return hm_parse_dim(o, ndim, opname, out);
}

/* flatten(input, start_dim=0, end_dim=-1) */
static PyObject *py_flatten(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "start_dim", "end_dim", NULL};
    PyObject *xo, *so = NULL, *eo = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:flatten", kwlist, &xo, &so, &eo)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "flatten", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int nd = HM_NDIM(x), s = 0, e = nd ? nd - 1 : 0;
    if ((so && dim_arg(so, nd, "flatten", &s) < 0) || (eo && dim_arg(eo, nd, "flatten", &e) < 0)) goto done;
    if (s > e) {
        PyErr_Format(PyExc_ValueError, "flatten(): start_dim (%d) cannot come after end_dim (%d)", s, e);
        goto done;
    }
    npy_intp shape[HM_MAX_DIMS];
    int k = 0;
    if (nd == 0) shape[k++] = 1;
    for (int d = 0; d < nd; d++) {
        if (d <= s || d > e) shape[k++] = HM_SHAPE(x)[d];
        else shape[k - 1] *= HM_SHAPE(x)[d];
    }
    result = reshape_to(x, k, shape, "FlattenBackward");
done:
    Py_DECREF(x);
    return result;
}

/* unsqueeze(input, dim): dim in [-ndim-1, ndim] */
static PyObject *py_unsqueeze(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    if (!PyArg_ParseTuple(args, "OO:unsqueeze", &xo, &dobj)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "unsqueeze", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int nd = HM_NDIM(x), d;
    if (nd >= HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "unsqueeze(): the input already has %d dimensions, the most hepml supports",
                     nd);
        goto done;
    }
    if (dim_arg(dobj, nd + 1, "unsqueeze", &d) < 0) goto done;
    npy_intp shape[HM_MAX_DIMS];
    for (int k = 0, j = 0; k <= nd; k++) shape[k] = k == d ? 1 : HM_SHAPE(x)[j++];
    result = reshape_to(x, nd + 1, shape, "UnsqueezeBackward");
done:
    Py_DECREF(x);
    return result;
}

/* squeeze(input, dim=None): drop size-1 dims (all, or those listed; listed
 * dims of another size are kept, as torch). */
static PyObject *py_squeeze(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"input", "dim", NULL};
    PyObject *xo, *dobj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:squeeze", kwlist, &xo, &dobj)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "squeeze", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    uint32_t mask;
    int nd = HM_NDIM(x);
    if (hm_parse_dims(dobj, nd, "squeeze", &mask) < 0) goto done;
    npy_intp shape[HM_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < nd; d++)
        if (!((mask >> d) & 1) || HM_SHAPE(x)[d] != 1) shape[k++] = HM_SHAPE(x)[d];
    result = reshape_to(x, k, shape, "SqueezeBackward");
done:
    Py_DECREF(x);
    return result;
}

/* --------------------------------------------------------------- permute */

static PyObject *permute_impl(HmTensor *x, const int *perm, const char *nodename);

static int permute_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int nd = (int)n->i[0], inv[HM_MAX_DIMS];
    for (int q = 0; q < nd; q++) inv[n->i[1 + q]] = q;
    int64_t gst[HM_MAX_DIMS], shape[HM_MAX_DIMS], st[HM_MAX_DIMS];
    npy_intp xshape[HM_MAX_DIMS];
    contiguous_strides(nd, PyArray_DIMS(g), gst);
    for (int d = 0; d < nd; d++) {
        xshape[d] = PyArray_DIM(g, inv[d]);
        shape[d] = xshape[d];
        st[d] = gst[inv[d]];
    }
    PyArrayObject *dx = hm_empty(nd, xshape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_strided_copy(PyArray_DATA(dx), PyArray_DATA(g), 4, nd, shape, st);
    gin[0] = dx;
    return 0;
}

static PyObject *permute_impl(HmTensor *x, const int *perm, const char *nodename) {
    int nd = HM_NDIM(x);
    int64_t st[HM_MAX_DIMS], pst[HM_MAX_DIMS], pshape[HM_MAX_DIMS];
    npy_intp oshape[HM_MAX_DIMS];
    contiguous_strides(nd, HM_SHAPE(x), st);
    for (int q = 0; q < nd; q++) {
        oshape[q] = HM_SHAPE(x)[perm[q]];
        pshape[q] = oshape[q];
        pst[q] = st[perm[q]];
    }
    PyArrayObject *out = hm_empty(nd, oshape, HM_DTYPE(x));
    if (!out) return NULL;
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(x->arr), elsize_of(x), nd, pshape, pst);
    HmNode *node = node1(nodename, permute_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    if (node) {
        node->i[0] = nd;
        for (int q = 0; q < nd; q++) node->i[1 + q] = perm[q];
    }
    return hm_wrap_with_node(out, (PyObject *)node);
}

/* permute(input, dims) */
static PyObject *py_permute(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    if (!PyArg_ParseTuple(args, "OO:permute", &xo, &dobj)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "permute", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    PyObject *seq = PySequence_Fast(dobj, "permute(): dims must be a sequence of ints");
    if (!seq) goto done;
    int nd = HM_NDIM(x), perm[HM_MAX_DIMS];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != nd) {
        char b[160];
        PyErr_Format(PyExc_ValueError, "permute(): dims has %zd entries but the input has %d dimensions (shape %s)", n,
                     nd, hm_shape_str(nd, HM_SHAPE(x), b, sizeof b));
        goto done;
    }
    uint32_t seen = 0;
    for (int q = 0; q < nd; q++) {
        if (hm_parse_dim(PySequence_Fast_GET_ITEM(seq, q), nd, "permute", &perm[q]) < 0) goto done;
        if (seen & (1u << perm[q])) {
            PyErr_Format(PyExc_ValueError, "permute(): dim %d appears more than once in %R", perm[q], dobj);
            goto done;
        }
        seen |= 1u << perm[q];
    }
    result = permute_impl(x, perm, "PermuteBackward");
done:
    Py_XDECREF(seq);
    Py_DECREF(x);
    return result;
}

/* transpose(input, dim0, dim1) */
static PyObject *py_transpose(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *d0o, *d1o;
    if (!PyArg_ParseTuple(args, "OOO:transpose", &xo, &d0o, &d1o)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "transpose", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int nd = HM_NDIM(x), d0, d1, perm[HM_MAX_DIMS];
    if (hm_parse_dim(d0o, nd, "transpose", &d0) < 0 || hm_parse_dim(d1o, nd, "transpose", &d1) < 0) goto done;
    for (int q = 0; q < nd; q++) perm[q] = q;
    if (nd) { perm[d0] = d1; perm[d1] = d0; }
    result = permute_impl(x, perm, "TransposeBackward");
done:
    Py_DECREF(x);
    return result;
}

/* ---------------------------------------------------------------- expand */

static int expand_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    (void)n;
    Py_INCREF(g); /* the engine sums the broadcast dims back down */
    gin[0] = g;
    return 0;
}

/* expand(input, sizes): -1 keeps a size; new leading dims are allowed. The
 * result is a copy (torch returns a view). */
static PyObject *py_expand(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *so;
    if (!PyArg_ParseTuple(args, "OO:expand", &xo, &so)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "expand", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    char b1[160], b2[160];
    PyObject *seq = PySequence_Fast(so, "expand(): sizes must be a sequence of ints");
    if (!seq) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int nd = HM_NDIM(x);
    if (n < nd || n > HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "expand(): got %zd sizes for an input with %d dimensions (shape %s); need "
                     "between %d and %d", n, nd, hm_shape_str(nd, HM_SHAPE(x), b1, sizeof b1), nd, HM_MAX_DIMS);
        goto done;
    }
    npy_intp oshape[HM_MAX_DIMS];
    int64_t shape[HM_MAX_DIMS], st[HM_MAX_DIMS], xst[HM_MAX_DIMS];
    contiguous_strides(nd, HM_SHAPE(x), xst);
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t v = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k), PyExc_OverflowError);
        if (v == -1 && PyErr_Occurred()) goto done;
        int d = (int)(k - (n - nd)); /* the input's dim, or < 0 for a new leading dim */
        npy_intp have = d >= 0 ? HM_SHAPE(x)[d] : 1;
        if (v == -1) {
            if (d < 0) {
                PyErr_Format(PyExc_ValueError, "expand(): -1 is not allowed for the new leading dimension %zd", k);
                goto done;
            }
            v = have;
        }
        if (v < 0 || (have != 1 && v != have)) {
            PyErr_Format(PyExc_ValueError,
                         "expand(): the expanded size %zd must match the existing size %zd at non-singleton "
                         "dimension %zd (input shape %s, target %R)", v, (Py_ssize_t)have, k,
                         hm_shape_str(nd, HM_SHAPE(x), b2, sizeof b2), so);
            goto done;
        }
        oshape[k] = v;
        shape[k] = v;
        st[k] = (d >= 0 && have != 1) ? xst[d] : 0;
    }
    PyArrayObject *out = hm_empty((int)n, oshape, HM_DTYPE(x));
    if (!out) goto done;
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(x->arr), elsize_of(x), (int)n, shape, st);
    HmNode *node = node1("ExpandBackward", expand_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_XDECREF(seq);
    Py_DECREF(x);
    return result;
}

/* ---------------------------------------------------------------- repeat */

/* The 2n-dim view (r0, s0, r1, s1, ...) of the output reads the input with
 * strides (0, st0, 0, st1, ...): one strided copy makes the tiling, and the
 * gradient is the same view summed back (serially: stride 0 repeats). */
static void repeat_view(int nd, const npy_intp *xshape, const int64_t *reps, int nr, int64_t *shape, int64_t *st) {
    int64_t xst[HM_MAX_DIMS];
    npy_intp padded[HM_MAX_DIMS];
    for (int k = 0; k < nr; k++) padded[k] = k - (nr - nd) >= 0 ? xshape[k - (nr - nd)] : 1;
    contiguous_strides(nr, padded, xst);
    for (int k = 0; k < nr; k++) {
        shape[2 * k] = reps[k];
        st[2 * k] = 0;
        shape[2 * k + 1] = padded[k];
        st[2 * k + 1] = xst[k];
    }
}

static int repeat_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    (void)g;
    int nd = (int)n->i[0], nr = (int)n->i[1];
    npy_intp xshape[HM_MAX_DIMS];
    int64_t reps[HM_MAX_DIMS], shape[2 * HM_MAX_DIMS], st[2 * HM_MAX_DIMS];
    for (int d = 0; d < nd; d++) xshape[d] = (npy_intp)n->i[2 + d];
    for (int k = 0; k < nr; k++) reps[k] = ((int64_t *)n->ctx)[k];
    repeat_view(nd, xshape, reps, nr, shape, st);
    PyArrayObject *dx = hm_zeros(nd, xshape, NPY_FLOAT32);
    if (!dx) return -1;
    hm_strided_add_f32(AF32(dx), AF32(g), 2 * nr, shape, st, 1);
    gin[0] = dx;
    return 0;
}

/* repeat(input, sizes): tile the input sizes[k] times along each dim. */
static PyObject *py_repeat(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *so;
    if (!PyArg_ParseTuple(args, "OO:repeat", &xo, &so)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "repeat", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int nr, nd = HM_NDIM(x);
    npy_intp reps_p[HM_MAX_DIMS], oshape[HM_MAX_DIMS];
    if (hm_parse_shape(so, "repeat", &nr, reps_p) < 0) goto done;
    if (nr < nd) {
        PyErr_Format(PyExc_ValueError, "repeat(): got %d repeat counts for an input with %d dimensions; need at "
                     "least %d", nr, nd, nd);
        goto done;
    }
    int64_t reps[HM_MAX_DIMS] = {0}, shape[2 * HM_MAX_DIMS], st[2 * HM_MAX_DIMS];
    for (int k = 0; k < nr; k++) reps[k] = reps_p[k];
    repeat_view(nd, HM_SHAPE(x), reps, nr, shape, st);
    for (int k = 0; k < nr; k++) oshape[k] = (npy_intp)(shape[2 * k] * shape[2 * k + 1]);
    PyArrayObject *out = hm_empty(nr, oshape, HM_DTYPE(x));
    if (!out) goto done;
    hm_strided_copy(PyArray_DATA(out), PyArray_DATA(x->arr), elsize_of(x), 2 * nr, shape, st);
    HmNode *node = node1("RepeatBackward", repeat_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) {
        node->i[0] = nd;
        node->i[1] = nr;
        for (int d = 0; d < nd; d++) node->i[2 + d] = HM_SHAPE(x)[d];
        node->ctx = malloc(sizeof(int64_t) * HM_MAX_DIMS);
        if (!node->ctx) { Py_DECREF(node); Py_DECREF(out); PyErr_NoMemory(); goto done; }
        node->ctx_free = free;
        memcpy(node->ctx, reps, sizeof(int64_t) * (size_t)nr);
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------------------ flip */

static void flip_view(int nd, const npy_intp *shape_in, uint32_t mask, int64_t *shape, int64_t *st, int64_t *start) {
    int64_t xst[HM_MAX_DIMS];
    contiguous_strides(nd, shape_in, xst);
    *start = 0;
    for (int d = 0; d < nd; d++) {
        shape[d] = shape_in[d];
        if (((mask >> d) & 1) && shape_in[d] > 0) {
            st[d] = -xst[d];
            *start += (shape_in[d] - 1) * xst[d];
        } else {
            st[d] = xst[d];
        }
    }
}

static int flip_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    int64_t shape[HM_MAX_DIMS], st[HM_MAX_DIMS], start;
    flip_view(PyArray_NDIM(g), PyArray_DIMS(g), (uint32_t)n->i[0], shape, st, &start);
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    if (PyArray_SIZE(g)) hm_strided_copy(AF32(dx), AF32(g) + start, 4, PyArray_NDIM(g), shape, st);
    gin[0] = dx;
    return 0;
}

/* flip(input, dims) */
static PyObject *py_flip(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    if (!PyArg_ParseTuple(args, "OO:flip", &xo, &dobj)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "flip", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    uint32_t mask;
    if (dobj == Py_None) {
        PyErr_SetString(PyExc_TypeError, "flip(): dims must be an int or a sequence of ints");
        goto done;
    }
    if (hm_parse_dims(dobj, HM_NDIM(x), "flip", &mask) < 0) goto done;
    int64_t shape[HM_MAX_DIMS], st[HM_MAX_DIMS], start;
    flip_view(HM_NDIM(x), HM_SHAPE(x), mask, shape, st, &start);
    PyArrayObject *out = hm_empty_like(x->arr);
    if (!out) goto done;
    if (HM_NUMEL(x))
        hm_strided_copy(PyArray_DATA(out), (char *)PyArray_DATA(x->arr) + start * elsize_of(x), elsize_of(x),
                        HM_NDIM(x), shape, st);
    HmNode *node = node1("FlipBackward", flip_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) node->i[0] = mask;
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------------------ roll */

static void split_at(int nd, const npy_intp *shape, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = *n = *inner = 1;
    for (int d = 0; d < nd; d++) {
        if (d < dim) *outer *= shape[d];
        else if (d == dim) *n = shape[d];
        else *inner *= shape[d];
    }
}

static int roll_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *dx = hm_empty_like(g);
    if (!dx) return -1;
    int64_t len = n->i[1], shift = n->i[3];
    hm_roll(AF32(dx), AF32(g), 4, n->i[0], len, n->i[2], len ? (len - shift) % len : 0);
    gin[0] = dx;
    return 0;
}

/* roll(input, shift, dim): one dim; hepml.roll composes several. */
static PyObject *py_roll(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    Py_ssize_t shift;
    if (!PyArg_ParseTuple(args, "OnO:roll", &xo, &shift, &dobj)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "roll", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int d;
    if (hm_parse_dim(dobj, HM_NDIM(x), "roll", &d) < 0) goto done;
    int64_t outer, len, inner;
    split_at(HM_NDIM(x), HM_SHAPE(x), HM_NDIM(x) ? d : -1, &outer, &len, &inner);
    int64_t s = len ? ((shift % len) + len) % len : 0;
    PyArrayObject *out = hm_empty_like(x->arr);
    if (!out) goto done;
    hm_roll(PyArray_DATA(out), PyArray_DATA(x->arr), elsize_of(x), outer, len, inner, s);
    HmNode *node = node1("RollBackward", roll_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); goto done; }
    if (node) { node->i[0] = outer; node->i[1] = len; node->i[2] = inner; node->i[3] = s; }
    result = hm_wrap_with_node(out, (PyObject *)node);
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------ narrow / select */

/* node->i: [0] outer, [1] n (input size along dim), [2] inner, [3] start,
 * [4] length, [5] ndim, [6..] input shape. */
static int narrow_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    npy_intp shape[HM_MAX_DIMS];
    int nd = (int)n->i[5];
    for (int d = 0; d < nd; d++) shape[d] = (npy_intp)n->i[6 + d];
    PyArrayObject *dx = hm_zeros(nd, shape, NPY_FLOAT32);
    if (!dx) return -1;
    int64_t inner = n->i[2];
    hm_block_copy(AF32(dx), n->i[1] * inner, n->i[3] * inner, AF32(g), n->i[4] * inner, 0, n->i[0], n->i[4] * inner,
                  4);
    gin[0] = dx;
    return 0;
}

static PyObject *narrow_impl(HmTensor *x, int d, int64_t start, int64_t length, int drop, const char *nodename) {
    int nd = HM_NDIM(x);
    int64_t outer, n, inner;
    split_at(nd, HM_SHAPE(x), d, &outer, &n, &inner);
    npy_intp oshape[HM_MAX_DIMS];
    int k = 0;
    for (int q = 0; q < nd; q++) {
        if (q != d) oshape[k++] = HM_SHAPE(x)[q];
        else if (!drop) oshape[k++] = length;
    }
    PyArrayObject *out = hm_empty(k, oshape, HM_DTYPE(x));
    if (!out) return NULL;
    hm_block_copy(PyArray_DATA(out), length * inner, 0, PyArray_DATA(x->arr), n * inner, start * inner, outer,
                  length * inner, elsize_of(x));
    HmNode *node = node1(nodename, narrow_backward, x);
    if (!node && PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    if (node) {
        node->i[0] = outer; node->i[1] = n; node->i[2] = inner; node->i[3] = start; node->i[4] = length;
        node->i[5] = nd;
        for (int q = 0; q < nd; q++) node->i[6 + q] = HM_SHAPE(x)[q];
    }
    return hm_wrap_with_node(out, (PyObject *)node);
}

/* narrow(input, dim, start, length): start may be negative (from the end). */
static PyObject *py_narrow(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    Py_ssize_t start, length;
    if (!PyArg_ParseTuple(args, "OOnn:narrow", &xo, &dobj, &start, &length)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "narrow", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int d;
    if (HM_NDIM(x) == 0) {
        PyErr_SetString(PyExc_IndexError, "narrow(): cannot narrow a 0-d tensor");
        goto done;
    }
    if (hm_parse_dim(dobj, HM_NDIM(x), "narrow", &d) < 0) goto done;
    Py_ssize_t size = HM_SHAPE(x)[d];
    if (start < 0) start += size;
    if (start < 0 || start > size || length < 0 || start + length > size) {
        PyErr_Format(PyExc_IndexError, "narrow(): start %zd and length %zd are out of range for dimension %d with "
                     "size %zd", start, length, d, size);
        goto done;
    }
    result = narrow_impl(x, d, start, length, 0, "NarrowBackward");
done:
    Py_DECREF(x);
    return result;
}

/* select(input, dim, index): the slice at index, without the dim. */
static PyObject *py_select(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *dobj;
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "OOn:select", &xo, &dobj, &index)) return NULL;
    HmTensor *x = hm_as_tensor(xo, "select", "input");
    if (!x) return NULL;
    PyObject *result = NULL;
    int d;
    if (HM_NDIM(x) == 0) {
        PyErr_SetString(PyExc_IndexError, "select(): cannot select from a 0-d tensor");
        goto done;
    }
    if (hm_parse_dim(dobj, HM_NDIM(x), "select", &d) < 0) goto done;
    Py_ssize_t size = HM_SHAPE(x)[d];
    if (index < -size || index >= size) {
        PyErr_Format(PyExc_IndexError, "select(): index %zd is out of bounds for dimension %d with size %zd", index, d,
                     size);
        goto done;
    }
    if (index < 0) index += size;
    result = narrow_impl(x, d, index, 1, 1, "SelectBackward");
done:
    Py_DECREF(x);
    return result;
}

/* ------------------------------------------------------------ cat / stack */

/* ctx: int64 offsets[n + 1] along the joined dim (in units of `inner`
 * elements); i[0] outer, i[1] total length along the dim, i[2] inner. */
static int cat_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    const int64_t *off = (const int64_t *)n->ctx;
    int64_t outer = n->i[0], total = n->i[1], inner = n->i[2];
    for (int k = 0; k < n->n_inputs; k++) {
        HmTensor *in = (HmTensor *)n->inputs[k];
        if (!in) continue;
        PyArrayObject *gi = hm_empty(HM_NDIM(in), HM_SHAPE(in), NPY_FLOAT32);
        if (!gi) return -1;
        int64_t len = (off[k + 1] - off[k]) * inner;
        hm_block_copy(AF32(gi), len, 0, AF32(g), total * inner, off[k] * inner, outer, len, 4);
        gin[k] = gi;
    }
    return 0;
}

/* Convert every entry of a sequence of tensors; dtypes are unified (all the
 * same, or everything becomes float32). Returns a new list or NULL. */
static PyObject *tensor_list(PyObject *seq_in, const char *opname) {
    if (hm_is_tensor(seq_in) || PyArray_Check(seq_in)) {
        PyErr_Format(PyExc_TypeError, "%s(): tensors must be a sequence of tensors (a list or tuple), got a single "
                     "%s", opname, Py_TYPE(seq_in)->tp_name);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(seq_in, "expected a sequence of tensors");
    if (!seq) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): tensors must be a sequence of tensors, got %s", opname,
                     Py_TYPE(seq_in)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        PyErr_Format(PyExc_ValueError, "%s(): expected a non-empty sequence of tensors", opname);
        Py_DECREF(seq);
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (!list) { Py_DECREF(seq); return NULL; }
    int mixed = 0, t0 = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        char argname[32];
        snprintf(argname, sizeof argname, "tensors[%zd]", k);
        HmTensor *t = hm_as_tensor(PySequence_Fast_GET_ITEM(seq, k), opname, argname);
        if (!t) { Py_DECREF(list); Py_DECREF(seq); return NULL; }
        if (t0 < 0) t0 = HM_DTYPE(t);
        else if (HM_DTYPE(t) != t0) mixed = 1;
        PyList_SET_ITEM(list, k, (PyObject *)t);
    }
    Py_DECREF(seq);
    if (mixed) {
        for (Py_ssize_t k = 0; k < n; k++) {
            HmTensor *t = hm_as_float_tensor(PyList_GET_ITEM(list, k), opname, "tensors");
            if (!t) { Py_DECREF(list); return NULL; }
            PyList_SetItem(list, k, (PyObject *)t);
        }
    }
    return list;
}

/* The joined result: out has shape oshape; tensor k occupies [off[k],
 * off[k+1]) along the join axis of the [outer, total, inner] view. */
static PyObject *join(PyObject *list, int ond, const npy_intp *oshape, int64_t outer, int64_t total, int64_t inner,
                      int64_t *off, const char *nodename) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    HmTensor *first = (HmTensor *)PyList_GET_ITEM(list, 0);
    int es = elsize_of(first);
    PyArrayObject *out = hm_empty(ond, oshape, HM_DTYPE(first));
    if (!out) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        HmTensor *t = (HmTensor *)PyList_GET_ITEM(list, k);
        int64_t len = (off[k + 1] - off[k]) * inner;
        if (len) hm_block_copy(PyArray_DATA(out), total * inner, off[k] * inner, PyArray_DATA(t->arr), len, 0, outer,
                               len, es);
    }
    PyObject **items = PySequence_Fast_ITEMS(list);
    HmNode *node = n <= INT32_MAX ? hm_node_new(nodename, cat_backward, items, (int)n) : NULL;
    if (!node && PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    if (node) {
        node->i[0] = outer;
        node->i[1] = total;
        node->i[2] = inner;
        node->ctx = malloc(sizeof(int64_t) * (size_t)(n + 1));
        if (!node->ctx) { Py_DECREF(node); Py_DECREF(out); PyErr_NoMemory(); return NULL; }
        node->ctx_free = free;
        memcpy(node->ctx, off, sizeof(int64_t) * (size_t)(n + 1));
    }
    return hm_wrap_with_node(out, (PyObject *)node);
}

/* cat(tensors, dim=0). As torch, 1-d empty tensors are skipped when joining
 * tensors of other ranks (a common way to start an accumulation). */
static PyObject *py_cat(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"tensors", "dim", NULL};
    PyObject *so, *dobj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:cat", kwlist, &so, &dobj)) return NULL;
    PyObject *all = tensor_list(so, "cat");
    if (!all) return NULL;
    PyObject *result = NULL, *list = NULL;
    int64_t *off = NULL;
    char b1[160], b2[160];
    /* the reference tensor: the first that is not a legacy empty 1-d one */
    Py_ssize_t n_all = PyList_GET_SIZE(all), ref = 0;
    for (Py_ssize_t k = 0; k < n_all; k++) {
        HmTensor *t = (HmTensor *)PyList_GET_ITEM(all, k);
        if (!(HM_NDIM(t) == 1 && HM_NUMEL(t) == 0)) { ref = k; break; }
    }
    HmTensor *r = (HmTensor *)PyList_GET_ITEM(all, ref);
    int nd = HM_NDIM(r), d = 0;
    if (nd == 0) {
        PyErr_SetString(PyExc_ValueError, "cat(): zero-dimensional tensors cannot be concatenated (use stack)");
        goto done;
    }
    if (dobj && hm_parse_dim(dobj, nd, "cat", &d) < 0) goto done;
    list = PyList_New(0);
    if (!list) goto done;
    for (Py_ssize_t k = 0; k < n_all; k++) {
        HmTensor *t = (HmTensor *)PyList_GET_ITEM(all, k);
        if (HM_NDIM(t) == 1 && HM_NUMEL(t) == 0 && nd != 1) continue;
        int ok = HM_NDIM(t) == nd;
        for (int q = 0; ok && q < nd; q++) ok = q == d || HM_SHAPE(t)[q] == HM_SHAPE(r)[q];
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "cat(): tensors[%zd] has shape %s, which does not match tensors[%zd] with "
                         "shape %s in every dimension except dim %d", k, hm_shape_str(HM_NDIM(t), HM_SHAPE(t), b1,
                         sizeof b1), ref, hm_shape_str(nd, HM_SHAPE(r), b2, sizeof b2), d);
            goto done;
        }
        if (PyList_Append(list, (PyObject *)t) < 0) goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    off = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!off) { PyErr_NoMemory(); goto done; }
    off[0] = 0;
    for (Py_ssize_t k = 0; k < n; k++) off[k + 1] = off[k] + HM_SHAPE(PyList_GET_ITEM(list, k))[d];
    int64_t outer, len, inner;
    split_at(nd, HM_SHAPE(r), d, &outer, &len, &inner);
    npy_intp oshape[HM_MAX_DIMS];
    for (int q = 0; q < nd; q++) oshape[q] = q == d ? off[n] : HM_SHAPE(r)[q];
    result = join(list, nd, oshape, outer, off[n], inner, off, "CatBackward");
done:
    free(off);
    Py_XDECREF(list);
    Py_DECREF(all);
    return result;
}

/* stack(tensors, dim=0): all of the same shape, joined along a new dim. */
static PyObject *py_stack(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"tensors", "dim", NULL};
    PyObject *so, *dobj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:stack", kwlist, &so, &dobj)) return NULL;
    PyObject *list = tensor_list(so, "stack");
    if (!list) return NULL;
    PyObject *result = NULL;
    int64_t *off = NULL;
    char b1[160], b2[160];
    HmTensor *r = (HmTensor *)PyList_GET_ITEM(list, 0);
    int nd = HM_NDIM(r), d = 0;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (nd >= HM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "stack(): the tensors already have %d dimensions, the most hepml supports", nd);
        goto done;
    }
    if (dobj && hm_parse_dim(dobj, nd + 1, "stack", &d) < 0) goto done;
    for (Py_ssize_t k = 1; k < n; k++) {
        HmTensor *t = (HmTensor *)PyList_GET_ITEM(list, k);
        if (!PyArray_SAMESHAPE(t->arr, r->arr)) {
            PyErr_Format(PyExc_ValueError, "stack(): every tensor must have the same shape; tensors[0] has shape %s "
                         "and tensors[%zd] has shape %s", hm_shape_str(nd, HM_SHAPE(r), b1, sizeof b1), k,
                         hm_shape_str(HM_NDIM(t), HM_SHAPE(t), b2, sizeof b2));
            goto done;
        }
    }
    off = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!off) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t k = 0; k <= n; k++) off[k] = k;
    npy_intp oshape[HM_MAX_DIMS];
    int64_t outer = 1, inner = 1;
    for (int q = 0, j = 0; q <= nd; q++) {
        if (q == d) { oshape[q] = n; continue; }
        oshape[q] = HM_SHAPE(r)[j];
        if (q < d) outer *= HM_SHAPE(r)[j];
        else inner *= HM_SHAPE(r)[j];
        j++;
    }
    result = join(list, nd + 1, oshape, outer, n, inner, off, "StackBackward");
done:
    free(off);
    Py_DECREF(list);
    return result;
}

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef hm_methods_shape[] = {
    {"reshape", py_reshape, METH_VARARGS, "reshape(input, shape): same data, new shape (one -1 inferred); no copy."},
    {"flatten", KW(py_flatten), "flatten(input, start_dim=0, end_dim=-1): merge dims start_dim..end_dim; no copy."},
    {"unsqueeze", py_unsqueeze, METH_VARARGS, "unsqueeze(input, dim): insert a size-1 dim; no copy."},
    {"squeeze", KW(py_squeeze), "squeeze(input, dim=None): drop size-1 dims; no copy."},
    {"permute", py_permute, METH_VARARGS, "permute(input, dims): reorder dims (a copy)."},
    {"transpose", py_transpose, METH_VARARGS, "transpose(input, dim0, dim1): swap two dims (a copy)."},
    {"expand", py_expand, METH_VARARGS, "expand(input, sizes): broadcast size-1 dims (-1 keeps; a copy)."},
    {"repeat", py_repeat, METH_VARARGS, "repeat(input, sizes): tile the input along each dim."},
    {"flip", py_flip, METH_VARARGS, "flip(input, dims): reverse the order along dims."},
    {"_roll1", py_roll, METH_VARARGS, "_roll1(input, shift, dim): roll along one dim."},
    {"narrow", py_narrow, METH_VARARGS, "narrow(input, dim, start, length): a slice along dim (a copy)."},
    {"select", py_select, METH_VARARGS, "select(input, dim, index): the slice at index, dim removed (a copy)."},
    {"cat", KW(py_cat), "cat(tensors, dim=0): join tensors along an existing dim."},
    {"stack", KW(py_stack), "stack(tensors, dim=0): join same-shape tensors along a new dim."},
    {NULL, NULL, 0, NULL},
};
