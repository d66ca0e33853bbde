/*
 * Bindings of the event generator (generator.h), the physics and preparation
 * kernels (physics.h) and the data-movement kernels (gather.h).
 *
 * These are the private building blocks of hepml.physics and hepml.data: nothing
 * here is differentiable, and most functions write into output arrays that the
 * caller allocated (NumPy only allocates; every value is computed here). Inputs
 * and outputs may be NumPy arrays (including read-only memory maps for inputs) or
 * hepml tensors (their storage is used). Arguments are checked strictly: the
 * right dtype, C-contiguous, and sizes that agree, with errors naming the
 * function, the argument, what it got and what it needs.
 *
 * Long kernels run with the GIL released (they touch only the arrays' memory,
 * which the call keeps alive), so a progress bar or another Python thread keeps
 * running during event generation or a batch gather.
 */
#include "hm.h"
#include "gather.h"
#include "generator.h"
#include "physics.h"
#include "rng.h"

#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

#define ANY_DTYPE (-1)
#define MASK_DTYPE (-2) /* bool or uint8: one byte per entry, nonzero = True */
#define BITS32_DTYPE (-3) /* float32 or int32/uint32: moved as 4-byte words */

static const char *dtype_need(int typenum) {
    switch (typenum) {
    case NPY_FLOAT32: return "float32";
    case NPY_INT64: return "int64";
    case NPY_INT32: return "int32";
    case MASK_DTYPE: return "bool (or uint8)";
    case BITS32_DTYPE: return "float32 or int32";
    default: return "any";
    }
}

static int dtype_ok(PyArrayObject *a, int typenum) {
    int t = PyArray_TYPE(a);
    if (typenum == ANY_DTYPE) return 1;
    if (typenum == MASK_DTYPE) return t == NPY_BOOL || t == NPY_UINT8;
    if (typenum == BITS32_DTYPE) return t == NPY_FLOAT32 || t == NPY_INT32 || t == NPY_UINT32;
    if (typenum == NPY_INT64) return t == NPY_INT64 || (t == NPY_LONGLONG && sizeof(long long) == 8);
    return t == typenum;
}

/*
 * The array behind `o` (a tensor's storage or an ndarray itself), borrowed.
 * Checks dtype, C-contiguity, alignment and (for outputs) writeability.
 * `o == None` returns NULL without error when allow_none, so optional arguments
 * read naturally; otherwise NULL means an error is set (check `*err`).
 */
static PyArrayObject *get_array(PyObject *o, const char *op, const char *arg, int typenum, int writable,
                                int allow_none, int *err) {
    *err = 0;
    if (o == NULL || o == Py_None) {
        if (allow_none) return NULL;
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be an array, got None", op, arg);
        *err = 1;
        return NULL;
    }
    PyArrayObject *a = NULL;
    if (hm_is_tensor(o)) a = HM_ARR(o);
    else if (PyArray_Check(o)) a = (PyArrayObject *)o;
    else {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a numpy array or hepml tensor, got %s", op, arg,
                     Py_TYPE(o)->tp_name);
        *err = 1;
        return NULL;
    }
    char sh[160];
    if (!dtype_ok(a, typenum)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must have dtype %s, got %R with shape %s", op, arg,
                     dtype_need(typenum), (PyObject *)PyArray_DESCR(a),
                     hm_shape_str(PyArray_NDIM(a), PyArray_DIMS(a), sh, sizeof sh));
        *err = 1;
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): argument '%s' (shape %s) must be C-contiguous and aligned; pass np.ascontiguousarray(...)",
                     op, arg, hm_shape_str(PyArray_NDIM(a), PyArray_DIMS(a), sh, sizeof sh));
        *err = 1;
        return NULL;
    }
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s(): output argument '%s' is read-only", op, arg);
        *err = 1;
        return NULL;
    }
    return a;
}

#define GET(var, obj, argname, typenum, writable)                                                   \
    PyArrayObject *var;                                                                             \
    do {                                                                                            \
        int e_;                                                                                     \
        var = get_array(obj, OPNAME, argname, typenum, writable, 0, &e_);                           \
        if (!var) return NULL;                                                                      \
    } while (0)
#define GET_OPT(var, obj, argname, typenum, writable)                                               \
    PyArrayObject *var;                                                                             \
    do {                                                                                            \
        int e_;                                                                                     \
        var = get_array(obj, OPNAME, argname, typenum, writable, 1, &e_);                           \
        if (e_) return NULL;                                                                        \
    } while (0)

static int64_t numel(PyArrayObject *a) { return (int64_t)PyArray_SIZE(a); }
static int64_t last_dim(PyArrayObject *a) { return PyArray_NDIM(a) > 0 ? (int64_t)PyArray_DIM(a, PyArray_NDIM(a) - 1) : 1; }
static void *data(PyArrayObject *a) { return a ? PyArray_DATA(a) : NULL; }

static int size_error(const char *op, const char *arg, PyArrayObject *a, const char *need) {
    char sh[160];
    PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has shape %s, expected %s", op, arg,
                 hm_shape_str(PyArray_NDIM(a), PyArray_DIMS(a), sh, sizeof sh), need);
    return -1;
}

/* numel(a) must be `want` ("need" describes it in the error). */
static int need_numel(const char *op, const char *arg, PyArrayObject *a, int64_t want, const char *need) {
    if (a && numel(a) != want) return size_error(op, arg, a, need);
    return 0;
}

/* ---------------------------------------------------------------- generator */

typedef struct {
    const char *name;
    size_t off;
    int is_int;
} cfg_field;

#define CF(f) {#f, offsetof(hm_ww_config, f), 0}
#define CI(f) {#f, offsetof(hm_ww_config, f), 1}
static const cfg_field cfg_fields[] = {
    CF(sqrt_s), CF(pdf_a), CF(pdf_b), CF(sqrt_shat_min), CF(w_mass), CF(w_width), CF(w_bw_cutoff),
    CF(w_plus_fraction), CF(electron_fraction), CF(pol_long), CF(pol_left), CF(vbs_pt_scale),
    CF(extra_jet_ratio), CF(extra_jet_pt_min), CF(extra_jet_pt_power), CF(extra_jet_eta_flat),
    CF(extra_jet_eta_smear), CF(jet_mass_fraction), CF(jet_resolution_stochastic), CF(jet_resolution_constant),
    CF(jet_angle_resolution), CF(lep_resolution), CF(met_resolution), CF(jet_pt_min), CF(jet_abs_eta_max),
    CF(lep_pt_min), CF(lep_abs_eta_max), CF(met_min), CI(max_trials)};
#define N_CFG ((int)(sizeof cfg_fields / sizeof cfg_fields[0]))

static PyObject *config_to_dict(const hm_ww_config *c) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int k = 0; k < N_CFG; k++) {
        const char *p = (const char *)c + cfg_fields[k].off;
        PyObject *v = cfg_fields[k].is_int ? PyLong_FromLongLong(*(const int64_t *)p) : PyFloat_FromDouble(*(const double *)p);
        if (!v || PyDict_SetItemString(d, cfg_fields[k].name, v) < 0) { Py_XDECREF(v); Py_DECREF(d); return NULL; }
        Py_DECREF(v);
    }
    return d;
}

/* defaults overridden by the entries of `obj` (a dict or None) */
static int config_from_obj(PyObject *obj, hm_ww_config *c, const char *op) {
    hm_ww_default_config(c);
    if (obj == NULL || obj == Py_None) return 0;
    if (!PyDict_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'config' must be a dict or None, got %s", op, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(obj, &pos, &key, &val)) {
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!name) {
            PyErr_Format(PyExc_TypeError, "%s(): config keys must be strings, got %R", op, key);
            return -1;
        }
        int k = 0;
        while (k < N_CFG && strcmp(cfg_fields[k].name, name) != 0) k++;
        if (k == N_CFG) {
            PyErr_Format(PyExc_ValueError, "%s(): unknown config key '%s' (see hepml.data.default_config())", op, name);
            return -1;
        }
        char *p = (char *)c + cfg_fields[k].off;
        if (cfg_fields[k].is_int) {
            long long v = PyLong_AsLongLong(val);
            if (v == -1 && PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "%s(): config '%s' must be an integer, got %R", op, name, val);
                return -1;
            }
            *(int64_t *)p = v;
        } else {
            double v = PyFloat_AsDouble(val);
            if (v == -1.0 && PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "%s(): config '%s' must be a number, got %R", op, name, val);
                return -1;
            }
            *(double *)p = v;
        }
    }
    const char *msg = hm_ww_config_error(c);
    if (msg) {
        PyErr_Format(PyExc_ValueError, "%s(): invalid config: %s", op, msg);
        return -1;
    }
    return 0;
}

static PyObject *py_ww_default_config(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    hm_ww_config c;
    hm_ww_default_config(&c);
    return config_to_dict(&c);
}

/* ww_check_config(config) -> the full config dict (defaults filled in), or an error. */
static PyObject *py_ww_check_config(PyObject *self, PyObject *arg) {
    (void)self;
    hm_ww_config c;
    if (config_from_obj(arg, &c, "ww_check_config") < 0) return NULL;
    return config_to_dict(&c);
}

/* One output array of the generator: its name, floats/ints per event, and where it goes. */
typedef struct {
    const char *name;
    int typenum;
    int nd;          /* dims after N */
    int dims[2];
    size_t off;      /* offsetof(hm_ww_events, field) */
    int optional;
} ev_field;

#define EVF(f, t, nd, d0, d1, opt) {#f, t, nd, {d0, d1}, offsetof(hm_ww_events, f), opt}
static const ev_field ev_fields[] = {
    EVF(vbs_jets, NPY_FLOAT32, 2, 2, 4, 0),
    EVF(nonvbs_jets, NPY_FLOAT32, 2, HM_WW_MAX_NONVBS, 4, 0),
    EVF(n_nonvbs, NPY_INT32, 0, 0, 0, 0),
    EVF(leptons, NPY_FLOAT32, 2, 2, 3, 0),
    EVF(lepton_pdgid, NPY_INT32, 1, 2, 0, 0),
    EVF(met, NPY_FLOAT32, 1, 2, 0, 0),
    EVF(neutrinos, NPY_FLOAT32, 2, 2, 3, 0),
    EVF(w_bosons, NPY_FLOAT32, 2, 2, 4, 0),
    EVF(vbs_partons, NPY_FLOAT32, 2, 2, 4, 0),
    EVF(x1x2, NPY_FLOAT32, 1, 2, 0, 0),
    EVF(trials, NPY_INT32, 0, 0, 0, 0),
    EVF(leptons_truth, NPY_FLOAT32, 2, 2, 3, 1),
    EVF(extra_jets_truth, NPY_FLOAT32, 2, HM_WW_MAX_NONVBS, 4, 1),
    EVF(n_extra_truth, NPY_INT32, 0, 0, 0, 1),
};
#define N_EVF ((int)(sizeof ev_fields / sizeof ev_fields[0]))

/*
 * ww_generate(outputs, first_event, seed, config=None) -> status
 * outputs: dict name -> preallocated array (see ev_fields; N = outputs['vbs_jets'].shape[0]).
 * Returns 0, or 2 when some event exhausted max_trials (its slot is zeroed, trials = 0).
 */
#undef OPNAME
#define OPNAME "ww_generate"
static PyObject *py_ww_generate(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"outputs", "first_event", "seed", "config", NULL};
    PyObject *outputs, *seed_obj, *config = Py_None;
    long long first_event;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!LO|O:ww_generate", kwlist, &PyDict_Type, &outputs, &first_event,
                                     &seed_obj, &config))
        return NULL;
    if (first_event < 0) {
        PyErr_Format(PyExc_ValueError, "ww_generate(): argument 'first_event' must be >= 0, got %lld", first_event);
        return NULL;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLong(seed_obj);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "ww_generate(): argument 'seed' must be an integer in [0, 2^64), got %R", seed_obj);
        return NULL;
    }
    hm_ww_config cfg;
    if (config_from_obj(config, &cfg, OPNAME) < 0) return NULL;

    hm_ww_events ev;
    memset(&ev, 0, sizeof ev);
    npy_intp n = -1;
    for (int k = 0; k < N_EVF; k++) {
        const ev_field *f = &ev_fields[k];
        PyObject *o = PyDict_GetItemString(outputs, f->name);
        if (!o) {
            if (f->optional) continue;
            PyErr_Format(PyExc_KeyError, "ww_generate(): 'outputs' has no array '%s'", f->name);
            return NULL;
        }
        int e;
        PyArrayObject *a = get_array(o, OPNAME, f->name, f->typenum, 1, 0, &e);
        if (!a) return NULL;
        if (n < 0) n = PyArray_NDIM(a) > 0 ? PyArray_DIM(a, 0) : -1;
        int ok = PyArray_NDIM(a) == 1 + f->nd && PyArray_DIM(a, 0) == n;
        for (int d = 0; ok && d < f->nd; d++) ok = PyArray_DIM(a, d + 1) == f->dims[d];
        if (!ok) {
            char need[96];
            if (f->nd == 0) snprintf(need, sizeof need, "(%zd,)", (Py_ssize_t)n);
            else if (f->nd == 1) snprintf(need, sizeof need, "(%zd, %d)", (Py_ssize_t)n, f->dims[0]);
            else snprintf(need, sizeof need, "(%zd, %d, %d)", (Py_ssize_t)n, f->dims[0], f->dims[1]);
            size_error(OPNAME, f->name, a, need);
            return NULL;
        }
        *(void **)((char *)&ev + f->off) = PyArray_DATA(a);
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = hm_ww_generate(&ev, (int64_t)first_event, (int64_t)n, (uint64_t)seed, &cfg);
    Py_END_ALLOW_THREADS
    if (status == 1) {
        PyErr_SetString(PyExc_RuntimeError, "ww_generate(): the generator refused its arguments (internal error)");
        return NULL;
    }
    return PyLong_FromLong(status);
}

/* ------------------------------------------------------------ four-vectors */

#undef OPNAME
#define OPNAME "phys_to_cartesian"
/* phys_to_cartesian(out[..., 4], x[..., F]): F = 2 (pt, phi), 3 (pt, eta, phi) or >= 4 */
static PyObject *py_phys_to_cartesian(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &oo, &xo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    int64_t f = last_dim(x);
    if (PyArray_NDIM(x) < 1 || f < 2) {
        size_error(OPNAME, "x", x, "(..., F) with F >= 2: (pt, phi), (pt, eta, phi) or (pt, eta, phi, m, ...)");
        return NULL;
    }
    int64_t rows = numel(x) / f;
    if (last_dim(out) != 4 || need_numel(OPNAME, "out", out, rows * 4, "(..., 4) with as many rows as 'x'") < 0) {
        if (!PyErr_Occurred()) size_error(OPNAME, "out", out, "(..., 4)");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    hm_ptetaphim_to_pxpypze(data(out), data(x), rows, f);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_to_ptetaphim"
static PyObject *py_phys_to_ptetaphim(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &oo, &xo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "p", NPY_FLOAT32, 0);
    if (last_dim(x) != 4 || PyArray_NDIM(x) < 1) { size_error(OPNAME, "p", x, "(..., 4) = (px, py, pz, E)"); return NULL; }
    if (need_numel(OPNAME, "out", out, numel(x), "the shape of 'p'") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    hm_pxpypze_to_ptetaphim(data(out), data(x), numel(x) / 4);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* x[..., k, F] -> n = rows, k; mask numel n*k or None */
static int collection_sizes(const char *op, PyArrayObject *x, PyArrayObject *mask, int64_t *n, int64_t *k, int64_t *f) {
    if (PyArray_NDIM(x) < 2 || last_dim(x) < 2) return size_error(op, "x", x, "(..., K, F) with F >= 2");
    *f = last_dim(x);
    *k = PyArray_DIM(x, PyArray_NDIM(x) - 2);
    *n = (*k > 0 && *f > 0) ? numel(x) / (*k * *f) : 0;
    if (mask && numel(mask) != *n * *k) return size_error(op, "mask", mask, "one entry per object of 'x' (..., K)");
    return 0;
}

#undef OPNAME
#define OPNAME "phys_p4_sum"
/* phys_p4_sum(out[..., 4], x[..., K, F], mask or None, accumulate) */
static PyObject *py_phys_p4_sum(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *mo;
    int acc;
    if (!PyArg_ParseTuple(args, "OOOp:" OPNAME, &oo, &xo, &mo, &acc)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    int64_t n, k, f;
    if (collection_sizes(OPNAME, x, mask, &n, &k, &f) < 0) return NULL;
    if (need_numel(OPNAME, "out", out, n * 4, "(..., 4), one row per event of 'x'") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    hm_p4_sum(data(out), data(x), data(mask), n, k, f, acc);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_p4_mass"
static PyObject *py_phys_p4_mass(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *mo;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &oo, &xo, &mo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    int64_t n, k, f;
    if (collection_sizes(OPNAME, x, mask, &n, &k, &f) < 0) return NULL;
    if (need_numel(OPNAME, "out", out, n, "one entry per event of 'x'") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    hm_p4_mass(data(out), data(x), data(mask), n, k, f);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ azimuth */

#undef OPNAME
#define OPNAME "phys_wrap_phi"
static PyObject *py_phys_wrap_phi(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &oo, &xo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "phi", NPY_FLOAT32, 0);
    if (need_numel(OPNAME, "out", out, numel(x), "the shape of 'phi'") < 0) return NULL;
    hm_wrap_phi(data(out), data(x), numel(x), 1);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_delta_phi"
static PyObject *py_phys_delta_phi(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *ao, *bo;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &oo, &ao, &bo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(a, ao, "a", NPY_FLOAT32, 0);
    GET(b, bo, "b", NPY_FLOAT32, 0);
    if (need_numel(OPNAME, "b", b, numel(a), "the shape of 'a'") < 0 ||
        need_numel(OPNAME, "out", out, numel(a), "the shape of 'a'") < 0)
        return NULL;
    hm_delta_phi(data(out), data(a), data(b), numel(a), 1, 1);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_rotate_copies"
/* phys_rotate_copies(out[C, n, K, F], x[n, K, F], mask[n, K] or None, angles[C * n], phi_col) */
static PyObject *py_phys_rotate_copies(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *mo, *ao;
    long long phi_col;
    if (!PyArg_ParseTuple(args, "OOOOL:" OPNAME, &oo, &xo, &mo, &ao, &phi_col)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    GET(ang, ao, "angles", NPY_FLOAT32, 0);
    if (PyArray_NDIM(x) != 3) { size_error(OPNAME, "x", x, "(N, K, F)"); return NULL; }
    int64_t n = PyArray_DIM(x, 0), k = PyArray_DIM(x, 1), f = PyArray_DIM(x, 2);
    if (phi_col < 0 || phi_col >= f) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'phi_col' = %lld is not a column of 'x' (F = %lld)", OPNAME,
                     phi_col, (long long)f);
        return NULL;
    }
    if (mask && numel(mask) != n * k) { size_error(OPNAME, "mask", mask, "(N, K) matching 'x'"); return NULL; }
    if (n == 0) Py_RETURN_NONE;
    if (numel(ang) % n != 0) { size_error(OPNAME, "angles", ang, "(C * N,) for C copies of the N events"); return NULL; }
    int64_t c = numel(ang) / n;
    if (need_numel(OPNAME, "out", out, c * n * k * f, "(C, N, K, F) with C = len(angles) / N") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    hm_phi_rotate_copies(data(out), data(x), data(mask), data(ang), c, n, k, f, phi_col);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ----------------------------------------------------------------- scalings */

enum { SC_LOG_PT = 0, SC_LOGIT_PHI = 1, SC_LOG1P = 2 };

static int parse_kind(const char *kind, const char *op) {
    if (strcmp(kind, "log_pt") == 0) return SC_LOG_PT;
    if (strcmp(kind, "logit_phi") == 0) return SC_LOGIT_PHI;
    if (strcmp(kind, "log1p") == 0) return SC_LOG1P;
    PyErr_Format(PyExc_ValueError, "%s(): argument 'kind' must be 'log_pt', 'logit_phi' or 'log1p', got '%s'", op, kind);
    return -1;
}

/* column `col` of x[..., F]: n rows, stride F */
static int column_sizes(const char *op, PyArrayObject *x, PyArrayObject *out, long long col, int64_t *n, int64_t *f) {
    *f = last_dim(x);
    if (PyArray_NDIM(x) < 1 || *f < 1) return size_error(op, "x", x, "(..., F) with F >= 1");
    if (col < 0 || col >= *f) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'col' = %lld is not a column of 'x' (F = %lld)", op, col,
                     (long long)*f);
        return -1;
    }
    *n = numel(x) / *f;
    if (numel(out) != numel(x) || last_dim(out) != *f) return size_error(op, "out", out, "the shape of 'x'");
    return 0;
}

#undef OPNAME
#define OPNAME "phys_scale"
/* phys_scale(kind, out, x, col, param) -> number of non-finite results.
 * Only column `col` of out is written; out may be x. param = pt_min for 'log_pt'. */
static PyObject *py_phys_scale(PyObject *self, PyObject *args) {
    (void)self;
    const char *kind;
    PyObject *oo, *xo;
    long long col;
    double param;
    if (!PyArg_ParseTuple(args, "sOOLd:" OPNAME, &kind, &oo, &xo, &col, &param)) return NULL;
    int kd = parse_kind(kind, OPNAME);
    if (kd < 0) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    int64_t n, f, bad = 0;
    if (column_sizes(OPNAME, x, out, col, &n, &f) < 0) return NULL;
    float *o = (float *)data(out) + col;
    const float *i = (const float *)data(x) + col;
    Py_BEGIN_ALLOW_THREADS
    if (kd == SC_LOG_PT) bad = hm_scale_log_pt(o, i, n, f, (float)param);
    else if (kd == SC_LOGIT_PHI) bad = hm_scale_logit_phi(o, i, n, f);
    else bad = hm_scale_log1p(o, i, n, f);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(bad);
}

#undef OPNAME
#define OPNAME "phys_unscale"
/* phys_unscale(kind, out, y, col, param, mask or None): mask has one entry per row. */
static PyObject *py_phys_unscale(PyObject *self, PyObject *args) {
    (void)self;
    const char *kind;
    PyObject *oo, *xo, *mo;
    long long col;
    double param;
    if (!PyArg_ParseTuple(args, "sOOLdO:" OPNAME, &kind, &oo, &xo, &col, &param, &mo)) return NULL;
    int kd = parse_kind(kind, OPNAME);
    if (kd < 0) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "y", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    int64_t n, f;
    if (column_sizes(OPNAME, x, out, col, &n, &f) < 0) return NULL;
    if (mask && numel(mask) != n) { size_error(OPNAME, "mask", mask, "one entry per row of 'y' (its shape without F)"); return NULL; }
    float *o = (float *)data(out) + col;
    const float *i = (const float *)data(x) + col;
    const uint8_t *m = data(mask);
    Py_BEGIN_ALLOW_THREADS
    if (kd == SC_LOG_PT) hm_unscale_log_pt(o, i, m, n, f, (float)param);
    else if (kd == SC_LOGIT_PHI) hm_unscale_logit_phi(o, i, m, n, f);
    else hm_unscale_log1p(o, i, m, n, f);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- standardisation */

#undef OPNAME
#define OPNAME "phys_masked_mean_std"
/* phys_masked_mean_std(x[..., S], f, mask or None) -> (mean[f] float64, std[f] float64, count) */
static PyObject *py_phys_masked_mean_std(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *mo;
    long long f;
    if (!PyArg_ParseTuple(args, "OLO:" OPNAME, &xo, &f, &mo)) return NULL;
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    int64_t s = last_dim(x);
    if (PyArray_NDIM(x) < 1 || f < 1 || f > s) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'features' = %lld must be in [1, %lld] (the last dim of 'x')",
                     OPNAME, f, (long long)s);
        return NULL;
    }
    int64_t rows = numel(x) / s;
    if (mask && numel(mask) != rows) { size_error(OPNAME, "mask", mask, "one entry per row of 'x'"); return NULL; }
    npy_intp d = (npy_intp)f;
    PyArrayObject *mean = (PyArrayObject *)PyArray_SimpleNew(1, &d, NPY_FLOAT64);
    PyArrayObject *std = (PyArrayObject *)PyArray_SimpleNew(1, &d, NPY_FLOAT64);
    if (!mean || !std) { Py_XDECREF(mean); Py_XDECREF(std); return NULL; }
    int64_t count;
    Py_BEGIN_ALLOW_THREADS
    count = hm_masked_mean_std(data(mean), data(std), data(x), data(mask), rows, f, s);
    Py_END_ALLOW_THREADS
    if (count < 0) {
        Py_DECREF(mean); Py_DECREF(std);
        return PyErr_NoMemory();
    }
    return Py_BuildValue("NNL", mean, std, (long long)count);
}

#undef OPNAME
#define OPNAME "phys_standardize"
/* phys_standardize(out, x[..., S], mean[f], std[f], mask or None, inverse) */
static PyObject *py_phys_standardize(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *meano, *stdo, *mo;
    int inverse;
    if (!PyArg_ParseTuple(args, "OOOOOp:" OPNAME, &oo, &xo, &meano, &stdo, &mo, &inverse)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 0);
    PyArrayObject *mean = (PyArrayObject *)PyArray_FROMANY(meano, NPY_FLOAT64, 1, 1, NPY_ARRAY_CARRAY_RO);
    if (!mean) return NULL;
    PyArrayObject *std = (PyArrayObject *)PyArray_FROMANY(stdo, NPY_FLOAT64, 1, 1, NPY_ARRAY_CARRAY_RO);
    if (!std) { Py_DECREF(mean); return NULL; }
    PyObject *result = NULL;
    int64_t s = last_dim(x), f = numel(mean);
    if (PyArray_NDIM(x) < 1 || f < 1 || f > s) {
        PyErr_Format(PyExc_ValueError, "%s(): 'mean' has %lld entries, expected between 1 and the last dim of 'x' (%lld)",
                     OPNAME, (long long)f, (long long)s);
        goto done;
    }
    if (numel(std) != f) {
        PyErr_Format(PyExc_ValueError, "%s(): 'std' has %lld entries, expected %lld like 'mean'", OPNAME,
                     (long long)numel(std), (long long)f);
        goto done;
    }
    int64_t rows = numel(x) / s;
    if (mask && numel(mask) != rows) { size_error(OPNAME, "mask", mask, "one entry per row of 'x'"); goto done; }
    if (numel(out) != numel(x) || last_dim(out) != s) { size_error(OPNAME, "out", out, "the shape of 'x'"); goto done; }
    Py_BEGIN_ALLOW_THREADS
    if (inverse) hm_masked_unstandardize(data(out), data(x), data(mask), data(mean), data(std), rows, f, s);
    else hm_masked_standardize(data(out), data(x), data(mask), data(mean), data(std), rows, f, s);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_DECREF(mean);
    Py_DECREF(std);
    return result;
}

/* ------------------------------------------------------ targets and padding */

#undef OPNAME
#define OPNAME "phys_order_pairs"
/* phys_order_pairs(out[..., 2, F], swapped[...] or None, x[..., 2, F], eta_col) */
static PyObject *py_phys_order_pairs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *so, *xo;
    long long eta_col;
    if (!PyArg_ParseTuple(args, "OOOL:" OPNAME, &oo, &so, &xo, &eta_col)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET_OPT(sw, so, "swapped", MASK_DTYPE, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    int64_t f = last_dim(x);
    if (PyArray_NDIM(x) < 2 || PyArray_DIM(x, PyArray_NDIM(x) - 2) != 2) { size_error(OPNAME, "x", x, "(..., 2, F)"); return NULL; }
    if (eta_col < 0 || eta_col >= f) {
        PyErr_Format(PyExc_ValueError, "%s(): argument 'eta_col' = %lld is not a column of 'x' (F = %lld)", OPNAME,
                     eta_col, (long long)f);
        return NULL;
    }
    int64_t n = f > 0 ? numel(x) / (2 * f) : 0;
    if (need_numel(OPNAME, "out", out, numel(x), "the shape of 'x'") < 0 ||
        need_numel(OPNAME, "swapped", sw, n, "one entry per pair of 'x'") < 0)
        return NULL;
    hm_order_pairs_by_eta(data(out), data(sw), data(x), n, f, eta_col);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_swap_pairs"
static PyObject *py_phys_swap_pairs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *so;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &oo, &xo, &so)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    GET(sw, so, "swapped", MASK_DTYPE, 0);
    int64_t f = last_dim(x);
    if (PyArray_NDIM(x) < 2 || PyArray_DIM(x, PyArray_NDIM(x) - 2) != 2) { size_error(OPNAME, "x", x, "(..., 2, F)"); return NULL; }
    int64_t n = f > 0 ? numel(x) / (2 * f) : 0;
    if (need_numel(OPNAME, "out", out, numel(x), "the shape of 'x'") < 0 ||
        need_numel(OPNAME, "swapped", sw, n, "one entry per pair of 'x'") < 0)
        return NULL;
    hm_swap_pairs(data(out), data(x), data(sw), n, f);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_pad_jets"
/* phys_pad_jets(out[N, S, Fo], mask[N, S] or None, lead[N, L, F], other_flat[M, F], offsets[N + 1])
 * -> number of events whose extra objects did not fit. Fo = F, or F + 1 for the label column. */
static PyObject *py_phys_pad_jets(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *mo, *lo, *fo, *offo;
    if (!PyArg_ParseTuple(args, "OOOOO:" OPNAME, &oo, &mo, &lo, &fo, &offo)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET_OPT(mask, mo, "mask", MASK_DTYPE, 1);
    GET(lead, lo, "lead", NPY_FLOAT32, 0);
    GET(flat, fo, "other_flat", NPY_FLOAT32, 0);
    GET(off, offo, "offsets", NPY_INT64, 0);
    if (PyArray_NDIM(lead) != 3) { size_error(OPNAME, "lead", lead, "(N, L, F)"); return NULL; }
    int64_t n = PyArray_DIM(lead, 0), l = PyArray_DIM(lead, 1), f = PyArray_DIM(lead, 2);
    if (PyArray_NDIM(flat) != 2 || PyArray_DIM(flat, 1) != f) {
        char need[64];
        snprintf(need, sizeof need, "(M, %lld) like the rows of 'lead'", (long long)f);
        size_error(OPNAME, "other_flat", flat, need);
        return NULL;
    }
    if (PyArray_NDIM(off) != 1 || PyArray_DIM(off, 0) != n + 1) { size_error(OPNAME, "offsets", off, "(N + 1,)"); return NULL; }
    if (PyArray_NDIM(out) != 3 || PyArray_DIM(out, 0) != n || PyArray_DIM(out, 1) < l ||
        (PyArray_DIM(out, 2) != f && PyArray_DIM(out, 2) != f + 1)) {
        size_error(OPNAME, "out", out, "(N, S, F) or (N, S, F + 1) with S >= L");
        return NULL;
    }
    int64_t slots = PyArray_DIM(out, 1), out_f = PyArray_DIM(out, 2);
    if (mask && (PyArray_NDIM(mask) != 2 || PyArray_DIM(mask, 0) != n || PyArray_DIM(mask, 1) != slots)) {
        size_error(OPNAME, "mask", mask, "(N, S) like 'out'");
        return NULL;
    }
    const int64_t *o = data(off);
    int64_t m = PyArray_DIM(flat, 0);
    int64_t badpos = hm_offsets_check(o, n, m - o[0]);
    if (badpos) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): 'offsets' must start >= 0, never decrease and end <= len(other_flat) = %lld; "
                     "it fails at position %lld", OPNAME, (long long)m, (long long)(badpos - 1));
        return NULL;
    }
    int64_t trunc;
    Py_BEGIN_ALLOW_THREADS
    trunc = hm_pad_jets(data(out), data(mask), data(lead), data(flat), o, n, l, f, slots, out_f);
    Py_END_ALLOW_THREADS
    if (trunc < 0) {
        PyErr_SetString(PyExc_ValueError, "phys_pad_jets(): inconsistent sizes or offsets");
        return NULL;
    }
    return PyLong_FromLongLong(trunc);
}

#undef OPNAME
#define OPNAME "phys_ecm_pz"
static PyObject *py_phys_ecm_pz(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    double beam;
    if (!PyArg_ParseTuple(args, "OOd:" OPNAME, &oo, &xo, &beam)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    GET(x, xo, "x1x2", NPY_FLOAT32, 0);
    if (last_dim(x) != 2) { size_error(OPNAME, "x1x2", x, "(..., 2) = (x1, x2)"); return NULL; }
    if (need_numel(OPNAME, "out", out, numel(x), "the shape of 'x1x2'") < 0) return NULL;
    hm_ecm_pz_from_x1x2(data(out), data(x), numel(x) / 2, (float)beam);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "phys_uniform"
/* phys_uniform(out float32, seed, offset, low, high): element i = counter offset + i of
 * the uniform stream of `seed` (independent of the global RNG state and of threads). */
static PyObject *py_phys_uniform(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo;
    unsigned long long seed, offset;
    double low, high;
    if (!PyArg_ParseTuple(args, "OKKdd:" OPNAME, &oo, &seed, &offset, &low, &high)) return NULL;
    GET(out, oo, "out", NPY_FLOAT32, 1);
    if (!(low < high)) {
        PyErr_Format(PyExc_ValueError, "%s(): need low < high, got %g and %g", OPNAME, low, high);
        return NULL;
    }
    hm_rand_uniform(data(out), numel(out), seed, offset, (float)low, (float)high);
    Py_RETURN_NONE;
}

/* -------------------------------------------------------------- data movement */

#undef OPNAME
#define OPNAME "data_gather_rows"
/* data_gather_rows(out[len(idx), ...], x[N, ...], idx int64) */
static PyObject *py_data_gather_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo, *io;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &oo, &xo, &io)) return NULL;
    GET(out, oo, "out", ANY_DTYPE, 1);
    GET(x, xo, "x", ANY_DTYPE, 0);
    GET(idx, io, "index", NPY_INT64, 0);
    if (PyArray_NDIM(x) < 1) { size_error(OPNAME, "x", x, "(N, ...)"); return NULL; }
    if (PyArray_ITEMSIZE(out) != PyArray_ITEMSIZE(x) || PyArray_TYPE(out) != PyArray_TYPE(x)) {
        PyErr_Format(PyExc_TypeError, "%s(): 'out' has dtype %R, expected %R like 'x'", OPNAME,
                     (PyObject *)PyArray_DESCR(out), (PyObject *)PyArray_DESCR(x));
        return NULL;
    }
    int64_t nrows = PyArray_DIM(x, 0), row = nrows > 0 ? numel(x) / nrows : 0;
    int64_t ni = numel(idx);
    if (PyArray_NDIM(out) < 1 || PyArray_DIM(out, 0) != ni || numel(out) != ni * row) {
        size_error(OPNAME, "out", out, "(len(index), *x.shape[1:])");
        return NULL;
    }
    const int64_t *ip = data(idx);
    int64_t bad = hm_index_first_bad(ip, ni, nrows);
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError, "%s(): index[%lld] = %lld is out of range for %lld rows", OPNAME,
                     (long long)bad, (long long)ip[bad], (long long)nrows);
        return NULL;
    }
    int64_t rb = row * (int64_t)PyArray_ITEMSIZE(x);
    Py_BEGIN_ALLOW_THREADS
    hm_gather_rows(data(out), data(x), ip, ni, rb);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "data_gather_batch"
/* data_gather_batch(arrays, idx) -> list of tensors, tensor j = arrays[j][idx].
 * The DataLoader's batch: one C call for every array of the dataset. Arrays must be
 * float32, int64 or bool (uint8 is returned as bool: it is how masks are stored). */
static PyObject *py_data_gather_batch(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *seq, *io;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &seq, &io)) return NULL;
    GET(idx, io, "index", NPY_INT64, 0);
    PyObject *fast = PySequence_Fast(seq, "data_gather_batch(): argument 'arrays' must be a sequence of arrays");
    if (!fast) return NULL;
    Py_ssize_t na = PySequence_Fast_GET_SIZE(fast);
    PyObject *result = PyList_New(na);
    PyArrayObject **outs = NULL;
    PyArrayObject **ins = NULL;
    if (!result) goto fail;
    outs = PyMem_Calloc((size_t)(na > 0 ? na : 1), sizeof *outs);
    ins = PyMem_Calloc((size_t)(na > 0 ? na : 1), sizeof *ins);
    if (!outs || !ins) { PyErr_NoMemory(); goto fail; }
    int64_t ni = numel(idx);
    const int64_t *ip = data(idx);
    for (Py_ssize_t j = 0; j < na; j++) {
        char argname[32];
        snprintf(argname, sizeof argname, "arrays[%zd]", j);
        int e;
        PyArrayObject *x = get_array(PySequence_Fast_GET_ITEM(fast, j), OPNAME, argname, ANY_DTYPE, 0, 0, &e);
        if (!x) goto fail;
        int t = PyArray_TYPE(x), tout;
        if (t == NPY_FLOAT32 || t == NPY_BOOL) tout = t;
        else if (t == NPY_UINT8) tout = NPY_BOOL;
        else if (dtype_ok(x, NPY_INT64)) tout = NPY_INT64;
        else {
            PyErr_Format(PyExc_TypeError, "%s(): %s has dtype %R; tensors hold float32, int64 or bool", OPNAME, argname,
                         (PyObject *)PyArray_DESCR(x));
            goto fail;
        }
        if (PyArray_NDIM(x) < 1) { size_error(OPNAME, argname, x, "(N, ...)"); goto fail; }
        if (j > 0 && PyArray_DIM(x, 0) != PyArray_DIM(ins[0], 0)) {
            PyErr_Format(PyExc_ValueError, "%s(): %s has %zd rows, arrays[0] has %zd", OPNAME, argname,
                         (Py_ssize_t)PyArray_DIM(x, 0), (Py_ssize_t)PyArray_DIM(ins[0], 0));
            goto fail;
        }
        if (j == 0) {
            int64_t bad = hm_index_first_bad(ip, ni, PyArray_DIM(x, 0));
            if (bad >= 0) {
                PyErr_Format(PyExc_IndexError, "%s(): index[%lld] = %lld is out of range for %lld rows", OPNAME,
                             (long long)bad, (long long)ip[bad], (long long)PyArray_DIM(x, 0));
                goto fail;
            }
        }
        npy_intp shape[HM_MAX_DIMS];
        if (PyArray_NDIM(x) > HM_MAX_DIMS) { size_error(OPNAME, argname, x, "at most 8 dims"); goto fail; }
        shape[0] = (npy_intp)ni;
        for (int d = 1; d < PyArray_NDIM(x); d++) shape[d] = PyArray_DIM(x, d);
        outs[j] = hm_empty(PyArray_NDIM(x), shape, tout);
        if (!outs[j]) goto fail;
        ins[j] = x;
    }
    if (na > 0 && ni > 0) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < na; j++) {
            int64_t nrows = PyArray_DIM(ins[j], 0);
            int64_t rb = nrows > 0 ? numel(ins[j]) / nrows * (int64_t)PyArray_ITEMSIZE(ins[j]) : 0;
            hm_gather_rows(PyArray_DATA(outs[j]), PyArray_DATA(ins[j]), ip, ni, rb);
        }
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t j = 0; j < na; j++) {
        PyObject *t = hm_wrap(outs[j]);
        outs[j] = NULL;
        if (!t) goto fail;
        PyList_SET_ITEM(result, j, t);
    }
    PyMem_Free(outs);
    PyMem_Free(ins);
    Py_DECREF(fast);
    return result;
fail:
    if (outs)
        for (Py_ssize_t j = 0; j < na; j++) Py_XDECREF(outs[j]);
    PyMem_Free(outs);
    PyMem_Free(ins);
    Py_XDECREF(result);
    Py_DECREF(fast);
    return NULL;
}

#undef OPNAME
#define OPNAME "data_copy"
/* data_copy(out, x): byte copy between two contiguous arrays of the same dtype and size. */
static PyObject *py_data_copy(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &oo, &xo)) return NULL;
    GET(out, oo, "out", ANY_DTYPE, 1);
    GET(x, xo, "x", ANY_DTYPE, 0);
    if (PyArray_TYPE(out) != PyArray_TYPE(x)) {
        PyErr_Format(PyExc_TypeError, "%s(): 'out' has dtype %R, 'x' has %R", OPNAME, (PyObject *)PyArray_DESCR(out),
                     (PyObject *)PyArray_DESCR(x));
        return NULL;
    }
    if (need_numel(OPNAME, "out", out, numel(x), "as many elements as 'x'") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    hm_copy_bytes(data(out), data(x), numel(x) * (int64_t)PyArray_ITEMSIZE(x));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "data_copy_column"
/* data_copy_column(out, out_stride, out_col, x, x_stride, x_col): 4-byte elements,
 * out[r * out_stride + out_col] = x[r * x_stride + x_col] for every row r; both arrays
 * must hold the same number of rows (numel / stride). */
static PyObject *py_data_copy_column(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    long long os, oc, xs, xc;
    if (!PyArg_ParseTuple(args, "OLLOLL:" OPNAME, &oo, &os, &oc, &xo, &xs, &xc)) return NULL;
    GET(out, oo, "out", BITS32_DTYPE, 1);
    GET(x, xo, "x", BITS32_DTYPE, 0);
    if (os < 1 || oc < 0 || oc >= os || xs < 1 || xc < 0 || xc >= xs) {
        PyErr_Format(PyExc_ValueError, "%s(): need 0 <= col < stride, got out (stride %lld, col %lld), x (stride %lld, col %lld)",
                     OPNAME, os, oc, xs, xc);
        return NULL;
    }
    if (numel(out) % os || numel(x) % xs || numel(out) / os != numel(x) / xs) {
        PyErr_Format(PyExc_ValueError, "%s(): 'out' (%lld elements, stride %lld) and 'x' (%lld elements, stride %lld) "
                     "do not hold the same number of rows", OPNAME, (long long)numel(out), os, (long long)numel(x), xs);
        return NULL;
    }
    hm_copy_strided32((uint32_t *)data(out) + oc, os, (const uint32_t *)data(x) + xc, xs, numel(x) / xs);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "data_place_columns"
/* data_place_columns(out[N, W], x[N, w], col0): out[:, col0:col0 + w] = x, same dtype. */
static PyObject *py_data_place_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    long long c0;
    if (!PyArg_ParseTuple(args, "OOL:" OPNAME, &oo, &xo, &c0)) return NULL;
    GET(out, oo, "out", ANY_DTYPE, 1);
    GET(x, xo, "x", ANY_DTYPE, 0);
    if (PyArray_TYPE(out) != PyArray_TYPE(x)) {
        PyErr_Format(PyExc_TypeError, "%s(): 'out' has dtype %R, 'x' has %R", OPNAME, (PyObject *)PyArray_DESCR(out),
                     (PyObject *)PyArray_DESCR(x));
        return NULL;
    }
    if (PyArray_NDIM(out) < 1 || PyArray_NDIM(x) < 1 || PyArray_DIM(out, 0) != PyArray_DIM(x, 0)) {
        size_error(OPNAME, "x", x, "(N, ...) with the N of 'out'");
        return NULL;
    }
    int64_t n = PyArray_DIM(x, 0);
    if (n == 0) Py_RETURN_NONE;
    int64_t w_out = numel(out) / n, w = numel(x) / n, isz = PyArray_ITEMSIZE(x);
    if (c0 < 0 || c0 + w > w_out) {
        PyErr_Format(PyExc_ValueError, "%s(): columns [%lld, %lld) do not fit in rows of %lld elements of 'out'", OPNAME,
                     c0, c0 + (long long)w, (long long)w_out);
        return NULL;
    }
    hm_copy_rows_strided((uint8_t *)data(out) + c0 * isz, w_out * isz, data(x), w * isz, w * isz, n);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "data_offsets_from_counts"
/* data_offsets_from_counts(offsets[N + 1] int64, counts[N] int32, base, max_count) -> total */
static PyObject *py_data_offsets_from_counts(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *co;
    long long base, maxc;
    if (!PyArg_ParseTuple(args, "OOLL:" OPNAME, &oo, &co, &base, &maxc)) return NULL;
    GET(off, oo, "offsets", NPY_INT64, 1);
    GET(cnt, co, "counts", NPY_INT32, 0);
    if (need_numel(OPNAME, "offsets", off, numel(cnt) + 1, "(len(counts) + 1,)") < 0) return NULL;
    int64_t total = hm_offsets_from_counts(data(off), data(cnt), numel(cnt), base, maxc);
    if (total < 0) {
        PyErr_Format(PyExc_ValueError, "%s(): a count is negative or above %lld", OPNAME, maxc);
        return NULL;
    }
    return PyLong_FromLongLong(total);
}

#undef OPNAME
#define OPNAME "data_jagged_from_padded"
/* data_jagged_from_padded(flat[M, F], padded[N, K, F], offsets[N + 1]) */
static PyObject *py_data_jagged_from_padded(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *fo, *po, *oo;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &fo, &po, &oo)) return NULL;
    GET(flat, fo, "flat", NPY_FLOAT32, 1);
    GET(pad, po, "padded", NPY_FLOAT32, 0);
    GET(off, oo, "offsets", NPY_INT64, 0);
    if (PyArray_NDIM(pad) != 3) { size_error(OPNAME, "padded", pad, "(N, K, F)"); return NULL; }
    int64_t n = PyArray_DIM(pad, 0), k = PyArray_DIM(pad, 1), f = PyArray_DIM(pad, 2);
    if (need_numel(OPNAME, "offsets", off, n + 1, "(N + 1,)") < 0) return NULL;
    const int64_t *o = data(off);
    int64_t m = f > 0 ? numel(flat) / f : 0;
    if (last_dim(flat) != f) { size_error(OPNAME, "flat", flat, "(M, F) like the rows of 'padded'"); return NULL; }
    if (hm_offsets_check(o, n, m)) {
        PyErr_Format(PyExc_ValueError, "%s(): 'offsets' must not decrease and span at most len(flat) = %lld rows",
                     OPNAME, (long long)m);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (o[i + 1] - o[i] > k) {
            PyErr_Format(PyExc_ValueError, "%s(): event %lld has %lld objects, more than the %lld slots of 'padded'",
                         OPNAME, (long long)i, (long long)(o[i + 1] - o[i]), (long long)k);
            return NULL;
        }
    hm_jagged_from_padded(data(flat), data(pad), o, n, k, f);
    Py_RETURN_NONE;
}

#undef OPNAME
#define OPNAME "data_rows_finite"
/* data_rows_finite(ok[N] uint8, x[N, ...] float32) -> rows of x with NaN/inf (cleared in ok) */
static PyObject *py_data_rows_finite(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *xo;
    if (!PyArg_ParseTuple(args, "OO:" OPNAME, &oo, &xo)) return NULL;
    GET(ok, oo, "ok", MASK_DTYPE, 1);
    GET(x, xo, "x", NPY_FLOAT32, 0);
    int64_t n = numel(ok);
    if (n == 0) return PyLong_FromLong(0);
    if (numel(x) % n) { size_error(OPNAME, "x", x, "a whole number of values per entry of 'ok'"); return NULL; }
    int64_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = hm_rows_finite_and(data(ok), data(x), n, numel(x) / n);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(bad);
}

#undef OPNAME
#define OPNAME "data_jagged_rows_finite"
static PyObject *py_data_jagged_rows_finite(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oo, *fo, *offo;
    if (!PyArg_ParseTuple(args, "OOO:" OPNAME, &oo, &fo, &offo)) return NULL;
    GET(ok, oo, "ok", MASK_DTYPE, 1);
    GET(flat, fo, "flat", NPY_FLOAT32, 0);
    GET(off, offo, "offsets", NPY_INT64, 0);
    int64_t n = numel(ok), f = PyArray_NDIM(flat) >= 2 ? last_dim(flat) : 1;
    if (need_numel(OPNAME, "offsets", off, n + 1, "(len(ok) + 1,)") < 0) return NULL;
    const int64_t *o = data(off);
    if (hm_offsets_check(o, n, f > 0 ? numel(flat) / f : 0)) {
        PyErr_Format(PyExc_ValueError, "%s(): 'offsets' must not decrease and span at most the %lld rows of 'flat'",
                     OPNAME, (long long)(f > 0 ? numel(flat) / f : 0));
        return NULL;
    }
    int64_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = hm_jagged_rows_finite_and(data(ok), data(flat), o, n, f);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(bad);
}

#undef OPNAME
#define OPNAME "data_mask_to_index"
/* data_mask_to_index(mask) -> int64 array of the positions of the True entries */
static PyObject *py_data_mask_to_index(PyObject *self, PyObject *arg) {
    (void)self;
    GET(mask, arg, "mask", MASK_DTYPE, 0);
    npy_intp c = (npy_intp)hm_mask_count(data(mask), numel(mask));
    PyArrayObject *idx = (PyArrayObject *)PyArray_SimpleNew(1, &c, NPY_INT64);
    if (!idx) return NULL;
    hm_mask_to_index(data(idx), data(mask), numel(mask));
    return (PyObject *)idx;
}

#undef OPNAME
#define OPNAME "data_mask_count"
static PyObject *py_data_mask_count(PyObject *self, PyObject *arg) {
    (void)self;
    GET(mask, arg, "mask", MASK_DTYPE, 0);
    return PyLong_FromLongLong(hm_mask_count(data(mask), numel(mask)));
}

#undef OPNAME
#define OPNAME "data_permutation"
/* data_permutation(n, seed, offset) -> int64 array: a uniformly random permutation of
 * 0..n-1 from the permutation stream of `seed` at `offset` (hm_rand_perm). */
static PyObject *py_data_permutation(PyObject *self, PyObject *args) {
    (void)self;
    long long n;
    unsigned long long seed, offset;
    if (!PyArg_ParseTuple(args, "LKK:" OPNAME, &n, &seed, &offset)) return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "%s(): n must be >= 0, got %lld", OPNAME, n);
        return NULL;
    }
    npy_intp d = (npy_intp)n;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, &d, NPY_INT64);
    if (!out) return NULL;
    if (n == 0) return (PyObject *)out;
    uint64_t *keys = PyMem_RawMalloc((size_t)n * 2 * sizeof(uint64_t));
    if (!keys) { Py_DECREF(out); return PyErr_NoMemory(); }
    Py_BEGIN_ALLOW_THREADS
    hm_rand_perm(data(out), keys, n, seed, offset);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(keys);
    return (PyObject *)out;
}

/* ----------------------------------------------------------------- table */

PyMethodDef hm_methods_physics[] = {
    {"ww_default_config", py_ww_default_config, METH_NOARGS, "The WW generator's default configuration (dict)."},
    {"ww_check_config", py_ww_check_config, METH_O, "Validate a WW generator config dict; returns it with defaults filled in."},
    {"ww_generate", (PyCFunction)(void (*)(void))py_ww_generate, METH_VARARGS | METH_KEYWORDS,
     "ww_generate(outputs, first_event, seed, config=None) -> status: fill preallocated event arrays."},
    {"phys_to_cartesian", py_phys_to_cartesian, METH_VARARGS, "phys_to_cartesian(out, x): (pt, eta, phi, m) -> (px, py, pz, E)."},
    {"phys_to_ptetaphim", py_phys_to_ptetaphim, METH_VARARGS, "phys_to_ptetaphim(out, p): (px, py, pz, E) -> (pt, eta, phi, m)."},
    {"phys_p4_sum", py_phys_p4_sum, METH_VARARGS, "phys_p4_sum(out, x, mask, accumulate): summed four-momenta."},
    {"phys_p4_mass", py_phys_p4_mass, METH_VARARGS, "phys_p4_mass(out, x, mask): invariant mass of the summed objects."},
    {"phys_wrap_phi", py_phys_wrap_phi, METH_VARARGS, "phys_wrap_phi(out, phi): wrap to (-pi, pi]."},
    {"phys_delta_phi", py_phys_delta_phi, METH_VARARGS, "phys_delta_phi(out, a, b): wrapped a - b."},
    {"phys_rotate_copies", py_phys_rotate_copies, METH_VARARGS,
     "phys_rotate_copies(out, x, mask, angles, phi_col): rotated copies about the beam axis."},
    {"phys_scale", py_phys_scale, METH_VARARGS, "phys_scale(kind, out, x, col, param) -> non-finite count."},
    {"phys_unscale", py_phys_unscale, METH_VARARGS, "phys_unscale(kind, out, y, col, param, mask)."},
    {"phys_masked_mean_std", py_phys_masked_mean_std, METH_VARARGS,
     "phys_masked_mean_std(x, features, mask) -> (mean, std, count) over valid rows."},
    {"phys_standardize", py_phys_standardize, METH_VARARGS, "phys_standardize(out, x, mean, std, mask, inverse)."},
    {"phys_order_pairs", py_phys_order_pairs, METH_VARARGS, "phys_order_pairs(out, swapped, x, eta_col): larger eta first."},
    {"phys_swap_pairs", py_phys_swap_pairs, METH_VARARGS, "phys_swap_pairs(out, x, swapped)."},
    {"phys_pad_jets", py_phys_pad_jets, METH_VARARGS,
     "phys_pad_jets(out, mask, lead, other_flat, offsets) -> events truncated."},
    {"phys_ecm_pz", py_phys_ecm_pz, METH_VARARGS, "phys_ecm_pz(out, x1x2, beam_energy): (E_cm, p_z)."},
    {"phys_uniform", py_phys_uniform, METH_VARARGS, "phys_uniform(out, seed, offset, low, high): seeded uniform floats."},
    {"data_gather_rows", py_data_gather_rows, METH_VARARGS, "data_gather_rows(out, x, index): out = x[index]."},
    {"data_gather_batch", py_data_gather_batch, METH_VARARGS,
     "data_gather_batch(arrays, index) -> [tensor(a[index]) for a in arrays], gathered in C."},
    {"data_copy", py_data_copy, METH_VARARGS, "data_copy(out, x): contiguous copy."},
    {"data_copy_column", py_data_copy_column, METH_VARARGS,
     "data_copy_column(out, out_stride, out_col, x, x_stride, x_col): strided 4-byte column copy."},
    {"data_place_columns", py_data_place_columns, METH_VARARGS, "data_place_columns(out, x, col0): out[:, col0:col0+w] = x."},
    {"data_offsets_from_counts", py_data_offsets_from_counts, METH_VARARGS,
     "data_offsets_from_counts(offsets, counts, base, max_count) -> total."},
    {"data_jagged_from_padded", py_data_jagged_from_padded, METH_VARARGS,
     "data_jagged_from_padded(flat, padded, offsets): padded objects -> flat jagged rows."},
    {"data_rows_finite", py_data_rows_finite, METH_VARARGS, "data_rows_finite(ok, x) -> rows with NaN/inf (cleared in ok)."},
    {"data_jagged_rows_finite", py_data_jagged_rows_finite, METH_VARARGS,
     "data_jagged_rows_finite(ok, flat, offsets) -> events with NaN/inf (cleared in ok)."},
    {"data_mask_to_index", py_data_mask_to_index, METH_O, "data_mask_to_index(mask) -> positions of True entries."},
    {"data_mask_count", py_data_mask_count, METH_O, "data_mask_count(mask) -> number of True entries."},
    {"data_permutation", py_data_permutation, METH_VARARGS, "data_permutation(n, seed, offset) -> random permutation."},
    {NULL, NULL, 0, NULL}};
