/* Maximum mean discrepancy as one autograd node (kernels in csrc/kernels/mmd.c).
 *
 *   _C.mmd(x, y, kernel, bandwidths, estimator, degree, per_feature)
 *   _C.mmd_median_bandwidth(x, y, n_sub)
 *
 * With grad enabled the forward runs the fused forward_grad kernel, which
 * returns the value and d MMD / d x, d y in one sweep over the pairs; the node
 * keeps those two arrays and its backward is only a scaling by the incoming
 * gradient. Under no_grad (or when neither sample needs a gradient) the plain
 * forward kernel runs, which skips the gradient arithmetic.
 *
 * per_feature: each column f of x [N, F] against column f of y [M, F] is a 1-D
 * MMD, out[f]; the course's per-feature loss. The Gaussian kernel without
 * bandwidths then takes a median-heuristic sigma per column, so those columns
 * run one at a time on a contiguous copy (the columns kernel shares one
 * bandwidth list across columns).
 */
#include "hm.h"
#include "mmd.h"
#include <math.h>
#include <string.h>

/* Points used by the median heuristic (pairs: n_sub (n_sub - 1) / 2). 1000
 * points give ~5e5 distances: a stable median at a few ms. */
#define MMD_MEDIAN_SUB 1000

static int mmd_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    PyArrayObject *gx = hm_node_saved(n, 0), *gy = gx ? hm_node_saved(n, 1) : NULL;
    if (!gy) return -1;
    const int64_t N = n->i[0], M = n->i[1], F = n->i[2];
    PyArrayObject *dx = hm_empty_like(gx);
    if (!dx) return -1;
    PyArrayObject *dy = hm_empty_like(gy);
    if (!dy) { Py_DECREF(dx); return -1; }
    /* single MMD: g is 0-d, one dloss broadcast over all D columns */
    if (n->i[3]) {
        hm_mmd_scale_grad(AF32(dx), AF32(dy), AF32(g), AF32(gx), AF32(gy), N, M, F);
    } else {
        const float d = AF32(g)[0];
        hm_mmd_scale_grad(AF32(dx), AF32(dy), &d, AF32(gx), AF32(gy), N * F, M * F, 1);
    }
    if (n->inputs[0]) gin[0] = dx; else Py_DECREF(dx);
    if (n->inputs[1]) gin[1] = dy; else Py_DECREF(dy);
    return 0;
}

static int parse_kernel(PyObject *o, int *kernel) {
    static const char *const names[] = {"multiscale", "rbf", "gaussian", "polynomial"};
    const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (s)
        for (int k = 0; k < 4; k++)
            if (!strcmp(s, names[k])) { *kernel = k; return 0; }
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_UnicodeError)) return -1;
    PyErr_Clear();
    PyObject *r = PyObject_Repr(o);
    PyErr_Format(PyExc_ValueError,
                 "mmd(): argument 'kernel' is %s, expected 'multiscale', 'rbf', 'gaussian' or 'polynomial'",
                 r ? PyUnicode_AsUTF8(r) : "?");
    Py_XDECREF(r);
    return -1;
}

/* bandwidths: None, a number or a sequence of positive finite numbers. */
static int parse_bandwidths(PyObject *o, int kernel, float *bw, int *n_bw) {
    *n_bw = 0;
    if (o == Py_None) return 0;
    if (kernel == HM_MMD_POLYNOMIAL) {
        PyErr_SetString(PyExc_ValueError,
                        "mmd(): argument 'bandwidths' must be None for kernel='polynomial' (it has a degree, "
                        "not bandwidths)");
        return -1;
    }
    PyObject *seq;
    if (PyFloat_Check(o) || PyLong_Check(o) || PyArray_IsScalar(o, Number)) {
        seq = PyTuple_Pack(1, o);
    } else {
        seq = PySequence_Fast(o, "mmd(): argument 'bandwidths' must be None, a number or a sequence of numbers");
    }
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int maxn = kernel == HM_MMD_GAUSSIAN ? 1 : HM_MMD_MAX_BW;
    if (n < 1 || n > maxn) {
        PyErr_Format(PyExc_ValueError, "mmd(): argument 'bandwidths' has %zd values, expected 1 to %d for kernel=%s",
                     n, maxn, kernel == HM_MMD_GAUSSIAN ? "'gaussian' (sigma)" : "'multiscale'/'rbf'");
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, k));
        if (v == -1.0 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (!(v > 0.0) || !isfinite(v) || !isfinite((float)v)) {
            PyErr_Format(PyExc_ValueError, "mmd(): argument 'bandwidths' has value %g at index %zd, expected "
                         "positive finite numbers", v, k);
            Py_DECREF(seq);
            return -1;
        }
        bw[k] = (float)v;
    }
    *n_bw = (int)n;
    Py_DECREF(seq);
    return 0;
}

static int all_finite(const float *p, int64_t n) {
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= isfinite(p[i]) ? 1 : 0;
    return ok;
}

/* Shared sample checks: 2-D float32, same number of columns, sizes for the
 * estimator, finite values. */
static int check_samples(HmTensor *x, HmTensor *y, int unbiased, const char *op) {
    char b1[64], b2[64];
    if (hm_require_float(x, op, "x") < 0 || hm_require_float(y, op, "y") < 0) return -1;
    if (HM_NDIM(x) != 2 || HM_NDIM(y) != 2) {
        PyErr_Format(PyExc_ValueError, "%s(): arguments 'x' and 'y' must be 2-D samples [N, D] and [M, D], got %s and %s",
                     op, hm_shape_str(HM_NDIM(x), HM_SHAPE(x), b1, sizeof b1),
                     hm_shape_str(HM_NDIM(y), HM_SHAPE(y), b2, sizeof b2));
        return -1;
    }
    const int64_t N = HM_SHAPE(x)[0], M = HM_SHAPE(y)[0], D = HM_SHAPE(x)[1];
    if (HM_SHAPE(y)[1] != D || D < 1) {
        PyErr_Format(PyExc_ValueError, "%s(): arguments 'x' %s and 'y' %s must have the same number of features D >= 1",
                     op, hm_shape_str(2, HM_SHAPE(x), b1, sizeof b1), hm_shape_str(2, HM_SHAPE(y), b2, sizeof b2));
        return -1;
    }
    if (unbiased >= 0) {
        if (unbiased && (N < 2 || M < 2)) {
            PyErr_Format(PyExc_ValueError, "%s(): estimator='unbiased' needs at least 2 points per sample, got N = %lld "
                         "and M = %lld", op, (long long)N, (long long)M);
            return -1;
        }
        if (!unbiased && N != M) {
            PyErr_Format(PyExc_ValueError, "%s(): estimator='biased' (the course's V-statistic) needs equal sample sizes, "
                         "got N = %lld and M = %lld; use estimator='unbiased' for unequal sizes", op, (long long)N,
                         (long long)M);
            return -1;
        }
    }
    if (N < 1 || M < 1) {
        PyErr_Format(PyExc_ValueError, "%s(): samples must not be empty, got N = %lld and M = %lld", op,
                     (long long)N, (long long)M);
        return -1;
    }
    if (!all_finite(HM_F32(x), HM_NUMEL(x)) || !all_finite(HM_F32(y), HM_NUMEL(y))) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' contains NaN or infinite values", op,
                     all_finite(HM_F32(x), HM_NUMEL(x)) ? "y" : "x");
        return -1;
    }
    return 0;
}

/* Median-heuristic sigma of the pooled sample [x; y] ([N, D] and [M, D]). */
static int median_sigma(const float *x, const float *y, int64_t N, int64_t M, int64_t D, float *sigma) {
    int64_t w = hm_mmd_median_work_size(N, M, MMD_MEDIAN_SUB);
    float *work = hm_scratch((size_t)(w > 0 ? w : 1) * sizeof(float));
    if (!work) return -1;
    double s;
    Py_BEGIN_ALLOW_THREADS
    s = hm_mmd_median_distance(work, x, y, N, M, D, MMD_MEDIAN_SUB);
    Py_END_ALLOW_THREADS
    hm_scratch_free(work);
    if (!(s > 0.0) || !isfinite(s)) {
        PyErr_SetString(PyExc_ValueError,
                        "mmd(): the median heuristic gave a zero bandwidth (all points coincide); pass "
                        "bandwidths=sigma for kernel='gaussian'");
        return -1;
    }
    *sigma = (float)s;
    return 0;
}

static PyObject *py_mmd(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *yo, *ko, *bwo, *eo;
    int degree, per_feature;
    if (!PyArg_ParseTuple(args, "OOOOOip:mmd", &xo, &yo, &ko, &bwo, &eo, &degree, &per_feature)) return NULL;
    int kernel, unbiased, n_bw = 0;
    float bw[HM_MMD_MAX_BW];
    if (parse_kernel(ko, &kernel) < 0) return NULL;
    const char *es = PyUnicode_Check(eo) ? PyUnicode_AsUTF8(eo) : NULL;
    if (es && !strcmp(es, "biased")) unbiased = 0;
    else if (es && !strcmp(es, "unbiased")) unbiased = 1;
    else {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "mmd(): argument 'estimator' must be 'biased' or 'unbiased'");
        return NULL;
    }
    if (kernel == HM_MMD_POLYNOMIAL && degree < 1) {
        PyErr_Format(PyExc_ValueError, "mmd(): argument 'degree' is %d, expected an integer >= 1", degree);
        return NULL;
    }
    if (parse_bandwidths(bwo, kernel, bw, &n_bw) < 0) return NULL;
    HmTensor *x = hm_as_float_tensor(xo, "mmd", "x");
    if (!x) return NULL;
    HmTensor *y = hm_as_float_tensor(yo, "mmd", "y");
    if (!y) { Py_DECREF(x); return NULL; }
    PyObject *result = NULL;
    PyArrayObject *out = NULL, *gx = NULL, *gy = NULL;
    double *outd = NULL;
    float *colx = NULL, *coly = NULL;
    if (check_samples(x, y, unbiased, "mmd") < 0) goto done;
    const int64_t N = HM_SHAPE(x)[0], M = HM_SHAPE(y)[0], D = HM_SHAPE(x)[1];
    const int median = kernel == HM_MMD_GAUSSIAN && n_bw == 0;
    const float *x_ = HM_F32(x), *y_ = HM_F32(y);
    if (median && !per_feature) {
        if (median_sigma(x_, y_, N, M, D, bw) < 0) goto done;
        n_bw = 1;
    }
    const float *bwp = n_bw ? bw : NULL;

    PyObject *inputs[2] = {(PyObject *)x, (PyObject *)y};
    int grad = hm_any_requires_grad(inputs, 2);
    if (grad) {
        npy_intp sx[2] = {N, D}, sy[2] = {M, D};
        if (!(gx = hm_empty(2, sx, NPY_FLOAT32)) || !(gy = hm_empty(2, sy, NPY_FLOAT32))) goto done;
    }
    npy_intp so[1] = {D};
    if (!(out = hm_empty(per_feature ? 1 : 0, so, NPY_FLOAT32))) goto done;
    float *o = AF32(out);

    if (!per_feature) {
        double v;
        Py_BEGIN_ALLOW_THREADS
        v = grad ? hm_mmd_forward_grad(AF32(gx), AF32(gy), x_, y_, N, M, D, kernel, bwp, n_bw, degree, unbiased)
                 : hm_mmd_forward(x_, y_, N, M, D, kernel, bwp, n_bw, degree, unbiased);
        Py_END_ALLOW_THREADS
        o[0] = (float)v;
    } else if (!median) {
        if (!(outd = hm_scratch((size_t)D * sizeof(double)))) goto done;
        Py_BEGIN_ALLOW_THREADS
        if (grad)
            hm_mmd_columns_forward_grad(outd, AF32(gx), AF32(gy), x_, y_, N, M, D, kernel, bwp, n_bw, degree,
                                        unbiased);
        else
            hm_mmd_columns_forward(outd, x_, y_, N, M, D, kernel, bwp, n_bw, degree, unbiased);
        Py_END_ALLOW_THREADS
        for (int64_t f = 0; f < D; f++) o[f] = (float)outd[f];
    } else {
        /* Gaussian, one median sigma per column: copy each column out (O(N)) */
        colx = hm_scratch((size_t)(N + M) * 2 * sizeof(float));
        if (!colx) goto done;
        coly = colx + N;
        float *cgx = coly + M, *cgy = cgx + N;
        for (int64_t f = 0; f < D; f++) {
            for (int64_t i = 0; i < N; i++) colx[i] = x_[i * D + f];
            for (int64_t i = 0; i < M; i++) coly[i] = y_[i * D + f];
            float sigma;
            if (median_sigma(colx, coly, N, M, 1, &sigma) < 0) goto done;
            double v;
            Py_BEGIN_ALLOW_THREADS
            v = grad ? hm_mmd_forward_grad(cgx, cgy, colx, coly, N, M, 1, kernel, &sigma, 1, degree, unbiased)
                     : hm_mmd_forward(colx, coly, N, M, 1, kernel, &sigma, 1, degree, unbiased);
            Py_END_ALLOW_THREADS
            o[f] = (float)v;
            if (grad) {
                for (int64_t i = 0; i < N; i++) AF32(gx)[i * D + f] = cgx[i];
                for (int64_t i = 0; i < M; i++) AF32(gy)[i * D + f] = cgy[i];
            }
        }
    }

    HmNode *node = grad ? hm_node_new(per_feature ? "MmdColumnsBackward" : "MmdBackward", mmd_backward, inputs, 2)
                        : NULL;
    if (!node && PyErr_Occurred()) goto done;
    if (node) {
        node->i[0] = N;
        node->i[1] = M;
        node->i[2] = D;
        node->i[3] = per_feature;
        if (hm_node_save(node, (PyObject *)gx) < 0 || hm_node_save(node, (PyObject *)gy) < 0) {
            Py_DECREF(node);
            goto done;
        }
    }
    result = hm_wrap_with_node(out, (PyObject *)node);
    out = NULL;
done:
    if (outd) hm_scratch_free(outd);
    if (colx) hm_scratch_free(colx);
    Py_XDECREF(out);
    Py_XDECREF(gx);
    Py_XDECREF(gy);
    Py_DECREF(x);
    Py_DECREF(y);
    return result;
}

static PyObject *py_mmd_median_bandwidth(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *yo;
    long long n_sub = MMD_MEDIAN_SUB;
    if (!PyArg_ParseTuple(args, "OO|L:median_bandwidth", &xo, &yo, &n_sub)) return NULL;
    if (n_sub < 2) {
        PyErr_Format(PyExc_ValueError, "median_bandwidth(): argument 'n_sub' is %lld, expected >= 2", n_sub);
        return NULL;
    }
    HmTensor *x = hm_as_float_tensor(xo, "median_bandwidth", "x");
    if (!x) return NULL;
    HmTensor *y = hm_as_float_tensor(yo, "median_bandwidth", "y");
    if (!y) { Py_DECREF(x); return NULL; }
    PyObject *result = NULL;
    if (check_samples(x, y, -1, "median_bandwidth") == 0) {
        const int64_t N = HM_SHAPE(x)[0], M = HM_SHAPE(y)[0], D = HM_SHAPE(x)[1];
        int64_t w = hm_mmd_median_work_size(N, M, n_sub);
        float *work = hm_scratch((size_t)(w > 0 ? w : 1) * sizeof(float));
        if (work) {
            double s = hm_mmd_median_distance(work, HM_F32(x), HM_F32(y), N, M, D, n_sub);
            hm_scratch_free(work);
            result = PyFloat_FromDouble(s);
        }
    }
    Py_DECREF(x);
    Py_DECREF(y);
    return result;
}

PyMethodDef hm_methods_mmd[] = {
    {"mmd", py_mmd, METH_VARARGS,
     "mmd(x, y, kernel, bandwidths, estimator, degree, per_feature): maximum mean discrepancy (one node)"},
    {"mmd_median_bandwidth", py_mmd_median_bandwidth, METH_VARARGS,
     "mmd_median_bandwidth(x, y, n_sub=1000): median pairwise distance of the pooled sample"},
    {NULL, NULL, 0, NULL},
};
