/* matrix_exp(A): exp of each square matrix in the last two dims, with gradient
 * (the Fréchet derivative of exp; see csrc/kernels/matexp.h). */
#include "hm.h"
#include "matexp.h"

/* Batch and size of a [..., n, n] float tensor (checked by the caller). */
static void batch_and_size(PyArrayObject *a, int64_t *batch, int64_t *n) {
    const int nd = PyArray_NDIM(a);
    *n = PyArray_DIM(a, nd - 1);
    int64_t b = 1;
    for (int d = 0; d < nd - 2; d++) b *= PyArray_DIM(a, d);
    *batch = b;
}

static int matrix_exp_backward(HmNode *node, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *a = hm_node_saved(node, 0);
    if (!a) return -1;
    int64_t batch, n;
    batch_and_size(a, &batch, &n);
    PyArrayObject *da = hm_empty_like(a);
    if (!da) return -1;
    if (batch > 0 && n > 0) {
        const int nt = hm_matrix_exp_max_threads();
        double *scratch = hm_scratch((size_t)nt * (size_t)hm_matrix_exp_scratch_doubles(n, 1) * sizeof(double));
        if (!scratch) {
            Py_DECREF(da);
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        hm_matrix_exp_backward(AF32(da), AF32(g), AF32(a), scratch, batch, n, nt);
        Py_END_ALLOW_THREADS
        hm_scratch_free(scratch);
    }
    gin[0] = da;
    return 0;
}

static PyObject *py_matrix_exp(PyObject *self, PyObject *arg) {
    (void)self;
    HmTensor *x = hm_as_float_tensor(arg, "matrix_exp", "input");
    if (!x) return NULL;
    char buf[128];
    const int nd = HM_NDIM(x);
    if (nd < 2 || HM_SHAPE(x)[nd - 1] != HM_SHAPE(x)[nd - 2]) {
        PyErr_Format(PyExc_ValueError,
                     "matrix_exp(): argument 'input' has shape %s, expected square matrices (..., n, n)",
                     hm_shape_str(nd, HM_SHAPE(x), buf, sizeof buf));
        Py_DECREF(x);
        return NULL;
    }
    int64_t batch, n;
    batch_and_size(x->arr, &batch, &n);
    PyArrayObject *out = hm_empty(nd, HM_SHAPE(x), NPY_FLOAT32);
    if (!out) {
        Py_DECREF(x);
        return NULL;
    }
    if (batch > 0 && n > 0) {
        const int nt = hm_matrix_exp_max_threads();
        double *scratch = hm_scratch((size_t)nt * (size_t)hm_matrix_exp_scratch_doubles(n, 0) * sizeof(double));
        if (!scratch) {
            Py_DECREF(out);
            Py_DECREF(x);
            return NULL;
        }
        float *o = AF32(out);
        const float *a = HM_F32(x);
        Py_BEGIN_ALLOW_THREADS
        hm_matrix_exp_forward(o, a, scratch, batch, n, nt);
        Py_END_ALLOW_THREADS
        hm_scratch_free(scratch);
    }
    PyObject *inputs[1] = {(PyObject *)x};
    HmNode *node = hm_node_new("MatrixExpBackward", matrix_exp_backward, inputs, 1);
    if (!node && PyErr_Occurred()) {
        Py_DECREF(out);
        Py_DECREF(x);
        return NULL;
    }
    /* the backward needs A itself (the Fréchet derivative is taken at A^T) */
    if (node && hm_node_save(node, (PyObject *)x) < 0) {
        Py_DECREF(node);
        Py_DECREF(out);
        Py_DECREF(x);
        return NULL;
    }
    Py_DECREF(x);
    return hm_wrap_with_node(out, (PyObject *)node);
}

PyMethodDef hm_methods_matexp[] = {
    {"matrix_exp", py_matrix_exp, METH_O,
     "matrix_exp(input[..., n, n]) -> exp of each matrix (scaling and squaring, computed in double)"},
    {NULL, NULL, 0, NULL}};
