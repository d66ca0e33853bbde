/* Optimiser steps over lists of parameters: one C call per parameter group,
 * updating parameters and state in place (no graph is recorded). */
#include "hm.h"
#include "optim.h"
#include <math.h>

/* Fetch item k of a list as a float32 tensor of n elements; name it in errors. */
static HmTensor *item_tensor(PyObject *list, Py_ssize_t k, const char *what, int64_t n, const char *op) {
    PyObject *o = PyList_GET_ITEM(list, k);
    if (!hm_is_tensor(o) || HM_DTYPE(o) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s(): %s[%zd] must be a float32 tensor", op, what, k);
        return NULL;
    }
    if (n >= 0 && HM_NUMEL(o) != n) {
        PyErr_Format(PyExc_ValueError, "%s(): %s[%zd] has %lld elements, the parameter has %lld", op, what, k,
                     (long long)HM_NUMEL(o), (long long)n);
        return NULL;
    }
    return (HmTensor *)o;
}

static int check_lists(const char *op, PyObject **lists, const char **names, int count) {
    for (int i = 0; i < count; i++) {
        if (lists[i] == Py_None) continue;
        if (!PyList_Check(lists[i])) {
            PyErr_Format(PyExc_TypeError, "%s(): %s must be a list", op, names[i]);
            return -1;
        }
        if (PyList_GET_SIZE(lists[i]) != PyList_GET_SIZE(lists[0])) {
            PyErr_Format(PyExc_ValueError, "%s(): %s has %zd entries, params has %zd", op, names[i],
                         PyList_GET_SIZE(lists[i]), PyList_GET_SIZE(lists[0]));
            return -1;
        }
    }
    return 0;
}

/* _sgd_step(params, grads, bufs_or_None, lr, momentum, dampening, weight_decay, nesterov, first_step) */
static PyObject *py_sgd_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *params, *grads, *bufs;
    float lr, momentum, dampening, wd;
    int nesterov, first;
    if (!PyArg_ParseTuple(args, "OOOffffpp:_sgd_step", &params, &grads, &bufs, &lr, &momentum, &dampening, &wd,
                          &nesterov, &first))
        return NULL;
    PyObject *lists[3] = {params, grads, bufs};
    const char *names[3] = {"params", "grads", "momentum_buffers"};
    if (check_lists("_sgd_step", lists, names, 3) < 0) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(params); k++) {
        HmTensor *p = item_tensor(params, k, "params", -1, "_sgd_step");
        if (!p) return NULL;
        HmTensor *g = item_tensor(grads, k, "grads", HM_NUMEL(p), "_sgd_step");
        HmTensor *b = (g && bufs != Py_None) ? item_tensor(bufs, k, "momentum_buffers", HM_NUMEL(p), "_sgd_step") : NULL;
        if (!g || (bufs != Py_None && !b)) return NULL;
        hm_sgd_step(HM_F32(p), HM_F32(g), b ? HM_F32(b) : NULL, HM_NUMEL(p), lr, momentum, dampening, wd, nesterov,
                    first);
        p->version++;
    }
    Py_RETURN_NONE;
}

/* _adam_step(params, grads, exp_avgs, exp_avg_sqs, max_sqs_or_None, steps, lr, beta1, beta2, eps,
 *            weight_decay, decoupled); steps is a list of ints (per-parameter step after this update). */
static PyObject *py_adam_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *params, *grads, *ms, *vs, *vmaxs, *steps;
    float lr, b1, b2, eps, wd;
    int decoupled;
    if (!PyArg_ParseTuple(args, "OOOOOOfffffp:_adam_step", &params, &grads, &ms, &vs, &vmaxs, &steps, &lr, &b1, &b2,
                          &eps, &wd, &decoupled))
        return NULL;
    PyObject *lists[6] = {params, grads, ms, vs, vmaxs, steps};
    const char *names[6] = {"params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "steps"};
    if (check_lists("_adam_step", lists, names, 6) < 0) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(params); k++) {
        HmTensor *p = item_tensor(params, k, "params", -1, "_adam_step");
        if (!p) return NULL;
        int64_t n = HM_NUMEL(p);
        HmTensor *g = item_tensor(grads, k, "grads", n, "_adam_step");
        HmTensor *m = g ? item_tensor(ms, k, "exp_avgs", n, "_adam_step") : NULL;
        HmTensor *v = m ? item_tensor(vs, k, "exp_avg_sqs", n, "_adam_step") : NULL;
        HmTensor *vm = (v && vmaxs != Py_None) ? item_tensor(vmaxs, k, "max_exp_avg_sqs", n, "_adam_step") : NULL;
        if (!v || (vmaxs != Py_None && !vm)) return NULL;
        long long step = PyLong_AsLongLong(PyList_GET_ITEM(steps, k));
        if (step == -1 && PyErr_Occurred()) return NULL;
        hm_adam_step(HM_F32(p), HM_F32(g), HM_F32(m), HM_F32(v), vm ? HM_F32(vm) : NULL, n, step, lr, b1, b2, eps, wd,
                     decoupled);
        p->version++;
    }
    Py_RETURN_NONE;
}

/* _adamax_step(params, grads, exp_avgs, exp_infs, steps, lr, beta1, beta2, eps, weight_decay) */
static PyObject *py_adamax_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *params, *grads, *ms, *us, *steps;
    float lr, b1, b2, eps, wd;
    if (!PyArg_ParseTuple(args, "OOOOOfffff:_adamax_step", &params, &grads, &ms, &us, &steps, &lr, &b1, &b2, &eps, &wd))
        return NULL;
    PyObject *lists[5] = {params, grads, ms, us, steps};
    const char *names[5] = {"params", "grads", "exp_avgs", "exp_infs", "steps"};
    if (check_lists("_adamax_step", lists, names, 5) < 0) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(params); k++) {
        HmTensor *p = item_tensor(params, k, "params", -1, "_adamax_step");
        if (!p) return NULL;
        int64_t n = HM_NUMEL(p);
        HmTensor *g = item_tensor(grads, k, "grads", n, "_adamax_step");
        HmTensor *m = g ? item_tensor(ms, k, "exp_avgs", n, "_adamax_step") : NULL;
        HmTensor *u = m ? item_tensor(us, k, "exp_infs", n, "_adamax_step") : NULL;
        if (!u) return NULL;
        long long step = PyLong_AsLongLong(PyList_GET_ITEM(steps, k));
        if (step == -1 && PyErr_Occurred()) return NULL;
        hm_adamax_step(HM_F32(p), HM_F32(g), HM_F32(m), HM_F32(u), n, step, lr, b1, b2, eps, wd);
        p->version++;
    }
    Py_RETURN_NONE;
}

/* _grad_norm(tensors) -> float: the 2-norm of all tensors together. */
static PyObject *py_grad_norm(PyObject *self, PyObject *list) {
    (void)self;
    if (!PyList_Check(list)) { PyErr_SetString(PyExc_TypeError, "_grad_norm(): expected a list"); return NULL; }
    double total = 0.0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(list); k++) {
        HmTensor *t = item_tensor(list, k, "tensors", -1, "_grad_norm");
        if (!t) return NULL;
        total += hm_sum_squares(HM_F32(t), HM_NUMEL(t));
    }
    return PyFloat_FromDouble(sqrt(total));
}

/* _scale_(tensors, factor): multiply in place. */
static PyObject *py_scale_(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *list;
    float factor;
    if (!PyArg_ParseTuple(args, "O!f:_scale_", &PyList_Type, &list, &factor)) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(list); k++) {
        HmTensor *t = item_tensor(list, k, "tensors", -1, "_scale_");
        if (!t) return NULL;
        hm_scale_inplace(HM_F32(t), HM_NUMEL(t), factor);
        t->version++;
    }
    Py_RETURN_NONE;
}

PyMethodDef hm_methods_optim[] = {
    {"_sgd_step", py_sgd_step, METH_VARARGS, NULL},
    {"_adam_step", py_adam_step, METH_VARARGS, NULL},
    {"_adamax_step", py_adamax_step, METH_VARARGS, NULL},
    {"_grad_norm", py_grad_norm, METH_O, NULL},
    {"_scale_", py_scale_, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
