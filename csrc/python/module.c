/*
 * hepml._C: module initialisation, threads, configuration, the RNG state, and
 * the registry of op families (ops_<family>.c files, found by setup.py and
 * listed in the generated hm_families.h).
 */
#define HM_MODULE_MAIN
#include "hm.h"
#include "blas.h"
#include "rng.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* declared in the other core files */
PyObject *hm_py_tensor(PyObject *self, PyObject *args, PyObject *kw);
PyObject *hm_py_from_numpy(PyObject *self, PyObject *arg);
PyObject *hm_py_set_tensor_class(PyObject *self, PyObject *cls);
PyObject *hm_py_bump_version(PyObject *self, PyObject *t);
PyObject *hm_py_set_grad_enabled(PyObject *self, PyObject *arg);
PyObject *hm_py_is_grad_enabled(PyObject *self, PyObject *noargs);
PyObject *hm_py_pool_stats(PyObject *self, PyObject *noargs);
PyObject *hm_py_pool_clear(PyObject *self, PyObject *noargs);
PyObject *hm_py_pool_set_limit(PyObject *self, PyObject *arg);

#include "hm_families.h" /* generated: extern tables + HM_FAMILY_TABLES */

/* ---------------------------------------------------------------- threads */

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1) {
        PyErr_Format(PyExc_ValueError, "set_num_threads(): n must be >= 1, got %ld", n);
        return NULL;
    }
#ifdef _OPENMP
    omp_set_num_threads((int)n);
#endif
    hm_openblas_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
#ifdef _OPENMP
    return PyLong_FromLong(omp_get_max_threads());
#else
    return PyLong_FromLong(1);
#endif
}

#ifndef HM_CFLAGS
#define HM_CFLAGS "unknown"
#endif
#ifndef HM_BLAS_NAME
#define HM_BLAS_NAME "unknown"
#endif

static PyObject *py_config(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    int omp_threads = 1;
#ifdef _OPENMP
    omp_threads = omp_get_max_threads();
#endif
    int avx512 = __builtin_cpu_supports("avx512f");
    int avx2 = __builtin_cpu_supports("avx2");
    return Py_BuildValue("{s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:i,s:i}",
                         "blas", HM_BLAS_NAME,
                         "blas_config", hm_openblas_get_config(),
                         "blas_core", hm_openblas_get_corename(),
                         "omp_threads", omp_threads,
                         "blas_threads", hm_openblas_get_num_threads(),
                         "cflags", HM_CFLAGS,
                         "compiler", __VERSION__,
                         "cpu_avx2", avx2,
                         "cpu_avx512", avx512);
}

/* -------------------------------------------------------------------- rng */

static uint64_t rng_seed = 0x5eed5eedULL, rng_offset = 0;

void hm_rng_reserve(uint64_t n, uint64_t *seed, uint64_t *offset) {
    *seed = rng_seed;
    *offset = rng_offset;
    /* round up to whole Philox blocks so consecutive calls never share one */
    rng_offset += (n + 3) & ~(uint64_t)3;
}

static PyObject *py_manual_seed(PyObject *self, PyObject *arg) {
    (void)self;
    unsigned long long s = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    rng_seed = s;
    rng_offset = 0;
    Py_RETURN_NONE;
}

static PyObject *py_get_rng_state(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("(KK)", (unsigned long long)rng_seed, (unsigned long long)rng_offset);
}

static PyObject *py_set_rng_state(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long s, o;
    if (!PyArg_ParseTuple(args, "KK:set_rng_state", &s, &o)) return NULL;
    rng_seed = s;
    rng_offset = o;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef core_methods[] = {
    {"tensor", (PyCFunction)(void (*)(void))hm_py_tensor, METH_VARARGS | METH_KEYWORDS,
     "tensor(data, dtype=None, requires_grad=False): a new tensor holding a copy of data."},
    {"from_numpy", hm_py_from_numpy, METH_O, "A tensor sharing a contiguous NumPy array's memory."},
    {"_set_tensor_class", hm_py_set_tensor_class, METH_O, NULL},
    {"_bump_version", hm_py_bump_version, METH_O, NULL},
    {"_set_grad_enabled", hm_py_set_grad_enabled, METH_O, "Set grad mode; returns the previous mode."},
    {"is_grad_enabled", hm_py_is_grad_enabled, METH_NOARGS, NULL},
    {"_pool_stats", hm_py_pool_stats, METH_NOARGS, "Buffer pool statistics (bytes cached, hits, misses)."},
    {"_pool_clear", hm_py_pool_clear, METH_NOARGS, "Return every cached buffer to the system."},
    {"_pool_set_limit_mb", hm_py_pool_set_limit, METH_O, NULL},
    {"set_num_threads", py_set_num_threads, METH_O, "Set the OpenMP and OpenBLAS thread counts together."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, NULL},
    {"_config", py_config, METH_NOARGS, NULL},
    {"manual_seed", py_manual_seed, METH_O, "Seed hepml's counter-based random number generator."},
    {"get_rng_state", py_get_rng_state, METH_NOARGS, "(seed, offset) of the random number generator."},
    {"set_rng_state", py_set_rng_state, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "hepml._C", "hepml's C core: tensors, autograd and kernels.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

static int add_table(PyObject *m, PyMethodDef *table) {
    PyObject *modname = PyModule_GetNameObject(m);
    if (!modname) return -1;
    for (PyMethodDef *d = table; d->ml_name; d++) {
        if (PyObject_HasAttrString(m, d->ml_name)) {
            PyErr_Format(PyExc_ImportError, "hepml._C: op '%s' is defined twice", d->ml_name);
            Py_DECREF(modname);
            return -1;
        }
        PyObject *f = PyCFunction_NewEx(d, NULL, modname);
        if (!f || PyModule_AddObject(m, d->ml_name, f) < 0) { Py_XDECREF(f); Py_DECREF(modname); return -1; }
    }
    Py_DECREF(modname);
    return 0;
}

PyMODINIT_FUNC PyInit__C(void) {
    import_array();
    if (PyType_Ready(&HmTensor_Type) < 0 || PyType_Ready(&HmNode_Type) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    Py_INCREF(&HmTensor_Type);
    if (PyModule_AddObject(m, "TensorBase", (PyObject *)&HmTensor_Type) < 0) return NULL;
    Py_INCREF(&HmNode_Type);
    if (PyModule_AddObject(m, "Node", (PyObject *)&HmNode_Type) < 0) return NULL;
    if (add_table(m, core_methods) < 0) return NULL;
    PyMethodDef *tables[] = {HM_FAMILY_TABLES NULL};
    for (int k = 0; tables[k]; k++)
        if (add_table(m, tables[k]) < 0) return NULL;
    return m;
}
