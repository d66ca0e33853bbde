/*
 * Bindings of the two-sample statistics (csrc/kernels/metrics.h) and a
 * sorting-based ROC AUC for the classifier two-sample test.
 *
 * All statistics are forward-only and double precision. Samples arrive as
 * hepml tensors or anything NumPy can read; they are converted (not computed
 * on) to C-contiguous float64 here, checked for shape, finiteness and size,
 * and handed to the kernels. Errors name the function and the argument.
 */
#include "hm.h"
#include "metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- arguments */

/* A sample as a new reference to a C-contiguous float64 [n, d] array (1-D
 * inputs become [n, 1]), finite, with at least min_n rows. */
static PyArrayObject *get_sample(PyObject *o, const char *op, const char *arg, int64_t min_n) {
    PyObject *src = hm_is_tensor(o) ? (PyObject *)HM_ARR(o) : o;
    PyArrayObject *x = (PyArrayObject *)PyArray_FROMANY(src, NPY_DOUBLE, 0, 0,
                                                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!x) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a tensor or array of real numbers, got %s", op,
                     arg, Py_TYPE(o)->tp_name);
        return NULL;
    }
    int nd = PyArray_NDIM(x);
    if (nd != 1 && nd != 2) {
        char buf[96];
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has shape %s, expected (N, D) or (N,)", op, arg,
                     hm_shape_str(nd, PyArray_DIMS(x), buf, sizeof buf));
        Py_DECREF(x);
        return NULL;
    }
    if (nd == 1) {
        npy_intp shp[2] = {PyArray_DIM(x, 0), 1};
        PyArray_Dims dims = {shp, 2};
        PyArrayObject *y = (PyArrayObject *)PyArray_Newshape(x, &dims, NPY_CORDER);
        Py_DECREF(x);
        if (!y) return NULL;
        x = y;
    }
    int64_t n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1);
    if (d < 1) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has no features (D = 0)", op, arg);
        Py_DECREF(x);
        return NULL;
    }
    if (n < min_n) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has %lld events, this statistic needs at least %lld", op,
                     arg, (long long)n, (long long)min_n);
        Py_DECREF(x);
        return NULL;
    }
    const double *p = (const double *)PyArray_DATA(x);
    int64_t total = n * d;
    /* A sum propagates NaN and overflows to inf on any inf, so one vectorisable
     * pass over the data detects both; the slow scan only runs on failure. */
    double acc = 0.0;
    for (int64_t i = 0; i < total; i++) acc += p[i] * 0.0;
    if (acc != 0.0 || isnan(acc)) {
        for (int64_t i = 0; i < total; i++)
            if (!isfinite(p[i])) {
                PyErr_Format(PyExc_ValueError, "%s(): argument '%s' contains a non-finite value (%s) at event %lld, "
                             "feature %lld", op, arg, isnan(p[i]) ? "nan" : "inf", (long long)(i / d),
                             (long long)(i % d));
                Py_DECREF(x);
                return NULL;
            }
    }
    return x;
}

#define SN(x) ((int64_t)PyArray_DIM(x, 0))
#define SD(x) ((int64_t)PyArray_DIM(x, 1))
#define SP(x) ((const double *)PyArray_DATA(x))

/* Both samples, with matching feature counts. */
static int get_pair(PyObject *ao, PyObject *bo, const char *op, int64_t min_n, PyArrayObject **a,
                    PyArrayObject **b) {
    *a = get_sample(ao, op, "a", min_n);
    if (!*a) return -1;
    *b = get_sample(bo, op, "b", min_n);
    if (!*b) { Py_CLEAR(*a); return -1; }
    if (SD(*a) != SD(*b)) {
        PyErr_Format(PyExc_ValueError, "%s(): arguments 'a' and 'b' must have the same number of features, got "
                     "a with %lld and b with %lld", op, (long long)SD(*a), (long long)SD(*b));
        Py_CLEAR(*a);
        Py_CLEAR(*b);
        return -1;
    }
    return 0;
}

static PyArrayObject *new_f64(int ndim, npy_intp d0, npy_intp d1) {
    npy_intp shp[2] = {d0, d1};
    return (PyArrayObject *)PyArray_SimpleNew(ndim, shp, NPY_DOUBLE);
}
#define OUT(a) ((double *)PyArray_DATA(a))

static int status_error(int st, const char *op) {
    if (st == HM_METRIC_OK) return 0;
    if (st == HM_METRIC_ENOMEM) PyErr_Format(PyExc_MemoryError, "%s(): out of memory", op);
    else if (st == HM_METRIC_ELAPACK)
        PyErr_Format(PyExc_RuntimeError, "%s(): the symmetric eigensolver did not converge", op);
    else PyErr_Format(PyExc_ValueError, "%s(): the statistic is undefined for these sizes/options", op);
    return -1;
}

static int check_nonneg(long long v, const char *op, const char *arg, long long min) {
    if (v < min) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be >= %lld, got %lld", op, arg, min, v);
        return -1;
    }
    return 0;
}

/* The jetnet normalisation: features scaled by 1 / max|a| (a = reference). */
static double *col_scale_of(PyArrayObject *a, int normalise) {
    if (!normalise) return NULL;
    double *s = (double *)malloc(sizeof(double) * (size_t)SD(a));
    if (!s) { PyErr_NoMemory(); return NULL; }
    hm_metric_maxabs_inv(s, SP(a), SN(a), SD(a));
    return s;
}

/* ------------------------------------------------------------- functions */

/* metric_columns(a, b, n_slices, n_perm, seed) -> (w1, ks, ks_p, w1_null, ks_null, dirs)
 * n_slices = 0: per-feature columns; otherwise random directions. */
static PyObject *py_columns(PyObject *self, PyObject *args) {
    const char *op = "metric_columns";
    PyObject *ao, *bo;
    long long k, n_perm;
    unsigned long long seed;
    int want_p = 1;
    if (!PyArg_ParseTuple(args, "OOLLK|p", &ao, &bo, &k, &n_perm, &seed, &want_p)) return NULL;
    if (check_nonneg(k, op, "n_slices", 0) || check_nonneg(n_perm, op, "n_permutations", 0)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 1, &a, &b)) return NULL;
    int64_t d = SD(a), ncol = k > 0 ? k : d;
    PyArrayObject *w1 = new_f64(1, ncol, 0), *ks = new_f64(1, ncol, 0), *ksp = new_f64(1, ncol, 0);
    PyArrayObject *w1n = new_f64(2, n_perm, ncol), *ksn = new_f64(2, n_perm, ncol);
    PyArrayObject *dirs = k > 0 ? new_f64(2, k, d) : NULL;
    PyObject *res = NULL;
    if (!w1 || !ks || !ksp || !w1n || !ksn || (k > 0 && !dirs)) goto done;
    int st = HM_METRIC_OK;
    Py_BEGIN_ALLOW_THREADS
    if (k > 0) st = hm_metric_random_directions(OUT(dirs), k, d, seed);
    if (st == HM_METRIC_OK)
        st = hm_metric_columns(OUT(w1), OUT(ks), want_p ? OUT(ksp) : NULL, n_perm ? OUT(w1n) : NULL,
                               n_perm ? OUT(ksn) : NULL, SP(a), SN(a), SP(b), SN(b), d,
                               k > 0 ? OUT(dirs) : NULL, ncol, n_perm, seed);
    Py_END_ALLOW_THREADS
    if (status_error(st, op)) goto done;
    if (!want_p) for (int64_t j = 0; j < ncol; j++) OUT(ksp)[j] = NAN;
    res = Py_BuildValue("(OOOOOO)", w1, ks, ksp, w1n, ksn, dirs ? (PyObject *)dirs : Py_None);
done:
    Py_XDECREF(w1); Py_XDECREF(ks); Py_XDECREF(ksp); Py_XDECREF(w1n); Py_XDECREF(ksn); Py_XDECREF(dirs);
    Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_row_mean_std(x [rows, cols]) -> (mean [rows], std [rows]) */
static PyObject *py_row_mean_std(PyObject *self, PyObject *arg) {
    PyArrayObject *x = (PyArrayObject *)PyArray_FROMANY(arg, NPY_DOUBLE, 2, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!x) return NULL;
    int64_t r = PyArray_DIM(x, 0), c = PyArray_DIM(x, 1);
    PyArrayObject *m = new_f64(1, r, 0), *s = new_f64(1, r, 0);
    PyObject *res = NULL;
    if (m && s) {
        if (c > 0) hm_metric_row_mean_std(OUT(m), OUT(s), SP(x), r, c);
        else for (int64_t i = 0; i < r; i++) OUT(m)[i] = OUT(s)[i] = NAN;
        res = Py_BuildValue("(OO)", m, s);
    }
    Py_XDECREF(m); Py_XDECREF(s); Py_DECREF(x);
    return res;
}

/* metric_perm_pvalues(observed [ncol], null [n_perm, ncol]) -> p [ncol] */
static PyObject *py_perm_pvalues(PyObject *self, PyObject *args) {
    PyObject *oo, *no;
    if (!PyArg_ParseTuple(args, "OO", &oo, &no)) return NULL;
    PyArrayObject *o = (PyArrayObject *)PyArray_FROMANY(oo, NPY_DOUBLE, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!o) return NULL;
    PyArrayObject *nl = (PyArrayObject *)PyArray_FROMANY(no, NPY_DOUBLE, 2, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!nl) { Py_DECREF(o); return NULL; }
    int64_t ncol = PyArray_DIM(o, 0);
    if (PyArray_DIM(nl, 1) != ncol) {
        PyErr_Format(PyExc_ValueError, "metric_perm_pvalues(): null has %lld columns, observed has %lld",
                     (long long)PyArray_DIM(nl, 1), (long long)ncol);
        Py_DECREF(o); Py_DECREF(nl);
        return NULL;
    }
    PyArrayObject *p = new_f64(1, ncol, 0);
    if (p) hm_metric_perm_pvalues(OUT(p), SP(o), SP(nl), PyArray_DIM(nl, 0), ncol);
    Py_DECREF(o); Py_DECREF(nl);
    return (PyObject *)p;
}

/* metric_sliced(a, b, n_slices, seed) -> (w1_mean, w1_std, ks_mean, ks_std, w1_slices, ks_slices) */
static PyObject *py_sliced(PyObject *self, PyObject *args) {
    const char *op = "metric_sliced";
    PyObject *ao, *bo;
    long long k;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOLK", &ao, &bo, &k, &seed)) return NULL;
    if (check_nonneg(k, op, "n_slices", 1)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 1, &a, &b)) return NULL;
    PyArrayObject *ws = new_f64(1, k, 0), *kss = new_f64(1, k, 0);
    PyObject *res = NULL;
    double wm = 0, wsd = 0, km = 0, ksd = 0;
    if (ws && kss) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_sliced(&wm, &wsd, &km, &ksd, OUT(ws), OUT(kss), SP(a), SN(a), SP(b), SN(b), SD(a), k, seed);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = Py_BuildValue("(ddddOO)", wm, wsd, km, ksd, ws, kss);
    }
    Py_XDECREF(ws); Py_XDECREF(kss); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_fgd(a, b, normalise) -> float */
static PyObject *py_fgd(PyObject *self, PyObject *args) {
    const char *op = "frechet_gaussian_distance";
    PyObject *ao, *bo;
    int normalise = 0;
    if (!PyArg_ParseTuple(args, "OO|p", &ao, &bo, &normalise)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    double *cs = col_scale_of(a, normalise), fd = 0;
    if (!normalise || cs) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_fgd(&fd, SP(a), SN(a), SP(b), SN(b), SD(a), cs);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = PyFloat_FromDouble(fd);
    }
    free(cs); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_fgd_inf(a, b, normalise, min_samples, max_samples, num_batches, num_points, seed)
 * -> (value, err, sizes, fd_means) */
static PyObject *py_fgd_inf(PyObject *self, PyObject *args) {
    const char *op = "fgd_inf";
    PyObject *ao, *bo;
    int normalise;
    long long mn, mx, nb, np_;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOpLLLLK", &ao, &bo, &normalise, &mn, &mx, &nb, &np_, &seed)) return NULL;
    if (check_nonneg(mn, op, "min_samples", 2) || check_nonneg(mx, op, "max_samples", mn) ||
        check_nonneg(nb, op, "num_batches", 1) || check_nonneg(np_, op, "num_points", 2))
        return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    PyArrayObject *sz = new_f64(1, np_, 0), *fm = new_f64(1, np_, 0);
    double *cs = col_scale_of(a, normalise), v = 0, e = 0;
    if (sz && fm && (!normalise || cs)) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_fgd_inf(&v, &e, OUT(sz), OUT(fm), SP(a), SN(a), SP(b), SN(b), SD(a), cs, mn, mx, nb, np_,
                               seed);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = Py_BuildValue("(ddOO)", v, e, sz, fm);
    }
    free(cs); Py_XDECREF(sz); Py_XDECREF(fm); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_fgd_perm(a, b, normalise, n_perm, seed) -> (observed, pvalue, null) */
static PyObject *py_fgd_perm(PyObject *self, PyObject *args) {
    const char *op = "permutation_test";
    PyObject *ao, *bo;
    int normalise;
    long long np_;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOpLK", &ao, &bo, &normalise, &np_, &seed)) return NULL;
    if (check_nonneg(np_, op, "n_permutations", 0)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    PyArrayObject *nl = new_f64(1, np_, 0);
    double *cs = col_scale_of(a, normalise), obs = 0, p = 1;
    if (nl && (!normalise || cs)) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_fgd_perm(&obs, &p, OUT(nl), SP(a), SN(a), SP(b), SN(b), SD(a), cs, np_, seed);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = Py_BuildValue("(ddO)", obs, p, nl);
    }
    free(cs); Py_XDECREF(nl); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_mmd_poly(a, b, degree, normalise, pairwise) -> float */
static PyObject *py_mmd_poly(PyObject *self, PyObject *args) {
    const char *op = "mmd_poly";
    PyObject *ao, *bo;
    int degree, normalise, pairwise = 0;
    if (!PyArg_ParseTuple(args, "OOip|p", &ao, &bo, &degree, &normalise, &pairwise)) return NULL;
    if (check_nonneg(degree, op, "degree", 1)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    double *cs = col_scale_of(a, normalise), v = 0;
    if (!normalise || cs) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = pairwise ? hm_metric_mmd_poly_pairwise(&v, SP(a), SN(a), SP(b), SN(b), SD(a), degree, cs)
                      : hm_metric_mmd_poly(&v, SP(a), SN(a), SP(b), SN(b), SD(a), degree, cs);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = PyFloat_FromDouble(v);
    }
    free(cs); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_kpd(a, b, degree, normalise, num_batches, batch_size, seed) -> (median, err, vals) */
static PyObject *py_kpd(PyObject *self, PyObject *args) {
    const char *op = "kpd";
    PyObject *ao, *bo;
    int degree, normalise;
    long long nb, bs;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOipLLK", &ao, &bo, &degree, &normalise, &nb, &bs, &seed)) return NULL;
    if (check_nonneg(degree, op, "degree", 1) || check_nonneg(nb, op, "num_batches", 1) ||
        check_nonneg(bs, op, "batch_size", 2))
        return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    PyArrayObject *vals = new_f64(1, nb, 0);
    double *cs = col_scale_of(a, normalise), med = 0, err = 0;
    if (vals && (!normalise || cs)) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_kpd(&med, &err, OUT(vals), SP(a), SN(a), SP(b), SN(b), SD(a), degree, cs, nb, bs, seed);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = Py_BuildValue("(ddO)", med, err, vals);
    }
    free(cs); Py_XDECREF(vals); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* metric_mmd_perm(a, b, degree, normalise, n_perm, seed) -> (observed, pvalue, null) */
static PyObject *py_mmd_perm(PyObject *self, PyObject *args) {
    const char *op = "permutation_test";
    PyObject *ao, *bo;
    int degree, normalise;
    long long np_;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOipLK", &ao, &bo, &degree, &normalise, &np_, &seed)) return NULL;
    if (check_nonneg(degree, op, "degree", 1) || check_nonneg(np_, op, "n_permutations", 0)) return NULL;
    PyArrayObject *a, *b;
    if (get_pair(ao, bo, op, 2, &a, &b)) return NULL;
    PyObject *res = NULL;
    PyArrayObject *nl = new_f64(1, np_, 0);
    double *cs = col_scale_of(a, normalise), obs = 0, p = 1;
    if (nl && (!normalise || cs)) {
        int st;
        Py_BEGIN_ALLOW_THREADS
        st = hm_metric_mmd_perm(&obs, &p, OUT(nl), SP(a), SN(a), SP(b), SN(b), SD(a), degree, cs, np_, seed);
        Py_END_ALLOW_THREADS
        if (!status_error(st, op)) res = Py_BuildValue("(ddO)", obs, p, nl);
    }
    free(cs); Py_XDECREF(nl); Py_DECREF(a); Py_DECREF(b);
    return res;
}

/* ------------------------------------------------------------------- AUC */

typedef struct {
    double s;
    int y;
} scored;

static int cmp_scored(const void *p, const void *q) {
    double a = ((const scored *)p)->s, b = ((const scored *)q)->s;
    return (a > b) - (a < b);
}

/* ROC AUC as the Mann-Whitney U statistic: sort by score once, give tied
 * scores their average rank (so a constant classifier scores exactly 0.5),
 * AUC = (sum of positive ranks - n1 (n1 + 1) / 2) / (n1 n0). O(n log n). */
static double auc_sorted(scored *v, int64_t n, int64_t n1) {
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    double rank_sum = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        int64_t pos = 0;
        while (j < n && v[j].s == v[i].s) pos += v[j++].y;
        /* ranks i+1 .. j share the average (i + 1 + j) / 2 */
        rank_sum += (double)pos * 0.5 * (double)(i + 1 + j);
        i = j;
    }
    double n0 = (double)(n - n1);
    return (rank_sum - 0.5 * (double)n1 * ((double)n1 + 1.0)) / ((double)n1 * n0);
}

/* metric_auc(scores [n], labels [n] (0/1)) -> float */
static PyObject *py_auc(PyObject *self, PyObject *args) {
    const char *op = "roc_auc";
    PyObject *so, *lo;
    if (!PyArg_ParseTuple(args, "OO", &so, &lo)) return NULL;
    PyArrayObject *s = get_sample(so, op, "scores", 1);
    if (!s) return NULL;
    PyObject *lsrc = hm_is_tensor(lo) ? (PyObject *)HM_ARR(lo) : lo;
    PyArrayObject *l = (PyArrayObject *)PyArray_FROMANY(lsrc, NPY_DOUBLE, 1, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!l) { Py_DECREF(s); return NULL; }
    int64_t n = PyArray_SIZE(s);
    PyObject *res = NULL;
    if (SD(s) != 1 || PyArray_SIZE(l) != n) {
        PyErr_Format(PyExc_ValueError, "%s(): 'scores' and 'labels' must be 1-D of the same length, got %lld and "
                     "%lld elements", op, (long long)n, (long long)PyArray_SIZE(l));
        goto done;
    }
    scored *v = (scored *)malloc(sizeof(scored) * (size_t)n);
    if (!v) { PyErr_NoMemory(); goto done; }
    int64_t n1 = 0;
    for (int64_t i = 0; i < n; i++) {
        double y = SP(l)[i];
        if (y != 0.0 && y != 1.0) {
            PyErr_Format(PyExc_ValueError, "%s(): 'labels' must be 0 or 1, got %g at %lld", op, y, (long long)i);
            free(v);
            goto done;
        }
        v[i].s = SP(s)[i];
        v[i].y = (int)y;
        n1 += v[i].y;
    }
    if (n1 == 0 || n1 == n) {
        PyErr_Format(PyExc_ValueError, "%s(): 'labels' must contain both classes", op);
        free(v);
        goto done;
    }
    double auc;
    Py_BEGIN_ALLOW_THREADS
    auc = auc_sorted(v, n, n1);
    Py_END_ALLOW_THREADS
    free(v);
    res = PyFloat_FromDouble(auc);
done:
    Py_DECREF(s); Py_DECREF(l);
    return res;
}

/* metric_ks_pvalue(d, n, m) -> float (scipy ks_2samp convention) */
static PyObject *py_ks_pvalue(PyObject *self, PyObject *args) {
    double d;
    long long n, m;
    if (!PyArg_ParseTuple(args, "dLL", &d, &n, &m)) return NULL;
    if (check_nonneg(n, "metric_ks_pvalue", "n", 1) || check_nonneg(m, "metric_ks_pvalue", "m", 1)) return NULL;
    return PyFloat_FromDouble(hm_metric_ks_pvalue(d, n, m));
}

PyMethodDef hm_methods_metrics[] = {
    {"metric_columns", py_columns, METH_VARARGS, "Per-feature or sliced W1/KS with permutation nulls."},
    {"metric_row_mean_std", py_row_mean_std, METH_O, "Row-wise mean and std (ddof 0)."},
    {"metric_perm_pvalues", py_perm_pvalues, METH_VARARGS, "Permutation p-values from a null table."},
    {"metric_sliced", py_sliced, METH_VARARGS, "Sliced W1/KS mean and std over random directions."},
    {"metric_fgd", py_fgd, METH_VARARGS, "Frechet Gaussian distance."},
    {"metric_fgd_inf", py_fgd_inf, METH_VARARGS, "FGD extrapolated to infinite sample size (jetnet fpd)."},
    {"metric_fgd_perm", py_fgd_perm, METH_VARARGS, "Permutation test of the FGD."},
    {"metric_mmd_poly", py_mmd_poly, METH_VARARGS, "Unbiased polynomial-kernel MMD^2."},
    {"metric_kpd", py_kpd, METH_VARARGS, "KPD (jetnet kpd): median and spread over batches."},
    {"metric_mmd_perm", py_mmd_perm, METH_VARARGS, "Permutation test of the polynomial MMD."},
    {"metric_auc", py_auc, METH_VARARGS, "ROC AUC (Mann-Whitney, ties averaged)."},
    {"metric_ks_pvalue", py_ks_pvalue, METH_VARARGS, "Two-sample KS p-value (scipy convention)."},
    {NULL, NULL, 0, NULL},
};
