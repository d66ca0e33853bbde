/* Binding of the fused multi-head attention (csrc/kernels/attention.c).
 *
 *   _C.attention(query, key, value, num_heads, key_padding_mask=None,
 *                attn_mask=None, is_causal=False, dropout_p=0.0,
 *                need_weights=False, scale=None, weights_after_dropout=True,
 *                op="attention", names=None)
 *     -> (out, weights)
 *
 * query [B, L, E], key and value [B, S, E] (batch first, already projected;
 * head h owns columns h*D .. h*D + D - 1, D = E / num_heads). out is [B, L, E]
 * and is one autograd node with gradients for query, key and value. weights
 * is None, or the [B, H, L, S] attention probabilities when need_weights is
 * true: after dropout (PyTorch's need_weights convention) unless
 * weights_after_dropout is false. weights carry no gradient.
 *
 * Masks, with PyTorch's nn.MultiheadAttention conventions:
 *   key_padding_mask  [B, S]; bool: True = ignore that key; float: added to the
 *                     scores of that key.
 *   attn_mask         [L, S] (every batch and head) or [B*H, L, S] (slab b*H + h);
 *                     bool: True = not allowed; float: added to the scores.
 *   is_causal         key j > query i is not allowed (top-left aligned).
 * A float key padding mask has no slot in the kernel, so it is folded here,
 * together with attn_mask, into one float [B*H, L, S] mask (as PyTorch merges
 * them). A query row whose keys are all masked gives zero output and zero
 * gradients (PyTorch's math path: NaN); see attention.h.
 *
 * `op` and `names` only change the error messages, so that a layer can report
 * its own argument names (e.g. 'memory_key_padding_mask'): names is a tuple of
 * five strings for (query, key, value, key_padding_mask, attn_mask).
 *
 *   _C.attention_packed(qkv, kv, num_heads, <the same keyword arguments>)
 *     -> (out, weights)
 *
 * The same attention on packed projections, read in place through row
 * strides (hm_attention_forward_strided): with kv None, qkv is [B, L, 3E]
 * holding q, k and v in column blocks 0, E and 2E (self-attention: the output
 * of ONE in-projection GEMM with the whole [3E, E] in_proj_weight); otherwise
 * qkv is the query [B, L, E] and kv is [B, S, 2E] holding k and v
 * (cross-attention: one GEMM with the k and v rows of the weight). The
 * gradient of a packed input comes back packed the same way, so the
 * in-projection's backward is again one GEMM per weight. Values and
 * gradients are those of attention() on the unpacked blocks, bit for bit.
 */
#include "hm.h"
#include "attention.h"
#include "nn.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* node->i layout */
enum {
    AI_B, AI_H, AI_L, AI_S, AI_D, AI_PER_HEAD, AI_CAUSAL, AI_SEED, AI_OFFSET,
    AI_KPM_SLOT, AI_BMASK_SLOT, AI_FMASK_SLOT, AI_LAYOUT
};
/* How q, k and v are laid out (node->i[AI_LAYOUT]); the node's inputs and the
 * first saved arrays follow it, lse comes right after them. */
enum {
    LAYOUT_SEPARATE, /* inputs (q, k, v), each [B, T, E] */
    LAYOUT_QKV,      /* input (qkv): [B, L, 3E] */
    LAYOUT_Q_KV      /* inputs (q, kv): [B, L, E] and [B, S, 2E] */
};
static int layout_ninputs(int layout) { return layout == LAYOUT_SEPARATE ? 3 : layout == LAYOUT_QKV ? 1 : 2; }
/* node->f layout */
enum { AF_SCALE, AF_DROPOUT };

static int attention_backward(HmNode *n, PyArrayObject *g, PyArrayObject **gin) {
    const int layout = (int)n->i[AI_LAYOUT], nin = layout_ninputs(layout);
    PyArrayObject *x[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nin; i++)
        if (!(x[i] = hm_node_saved(n, i))) return -1;
    PyArrayObject *lse = hm_node_saved(n, nin);
    if (!lse) return -1;
    PyArrayObject *kpm = NULL, *bm = NULL, *fm = NULL;
    if (n->i[AI_KPM_SLOT] >= 0 && !(kpm = hm_node_saved(n, (int)n->i[AI_KPM_SLOT]))) return -1;
    if (n->i[AI_BMASK_SLOT] >= 0 && !(bm = hm_node_saved(n, (int)n->i[AI_BMASK_SLOT]))) return -1;
    if (n->i[AI_FMASK_SLOT] >= 0 && !(fm = hm_node_saved(n, (int)n->i[AI_FMASK_SLOT]))) return -1;
    /* The kernel writes all gradients in one pass over each (b, h) tile, so
     * all are allocated even when an input needs none. Packed gradients are
     * written completely: every head writes its D columns of every block. */
    PyArrayObject *d[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nin; i++)
        if (!(d[i] = hm_empty_like(x[i]))) {
            for (int j = 0; j < i; j++) Py_DECREF(d[j]);
            return -1;
        }
    const int64_t E = n->i[AI_H] * n->i[AI_D];
    const float *q, *k, *v;
    float *dq, *dk, *dv;
    int64_t ldq = E, ldk = E, ldv = E;
    if (layout == LAYOUT_SEPARATE) {
        q = AF32(x[0]); k = AF32(x[1]); v = AF32(x[2]);
        dq = AF32(d[0]); dk = AF32(d[1]); dv = AF32(d[2]);
    } else if (layout == LAYOUT_QKV) {
        q = AF32(x[0]); k = q + E; v = q + 2 * E;
        dq = AF32(d[0]); dk = dq + E; dv = dq + 2 * E;
        ldq = ldk = ldv = 3 * E;
    } else {
        q = AF32(x[0]); k = AF32(x[1]); v = k + E;
        dq = AF32(d[0]); dk = AF32(d[1]); dv = dk + E;
        ldk = ldv = 2 * E;
    }
    int rc = hm_attention_backward_strided(dq, dk, dv, AF32(g), q, ldq, k, ldk, v, ldv, AF32(lse),
                                           kpm ? (const uint8_t *)PyArray_DATA(kpm) : NULL,
                                           bm ? (const uint8_t *)PyArray_DATA(bm) : NULL, fm ? AF32(fm) : NULL,
                                           (int)n->i[AI_PER_HEAD], (int)n->i[AI_CAUSAL], n->i[AI_B], n->i[AI_H],
                                           n->i[AI_L], n->i[AI_S], n->i[AI_D], (float)n->f[AF_SCALE],
                                           (float)n->f[AF_DROPOUT], (uint64_t)n->i[AI_SEED],
                                           (uint64_t)n->i[AI_OFFSET]);
    if (rc < 0) {
        for (int i = 0; i < nin; i++) Py_DECREF(d[i]);
        PyErr_SetString(PyExc_MemoryError, "attention backward: could not allocate kernel scratch memory");
        return -1;
    }
    for (int i = 0; i < nin; i++) {
        if (n->inputs[i]) gin[i] = d[i];
        else Py_DECREF(d[i]);
    }
    return 0;
}

/* A mask argument: None (returns NULL, no error), or a bool / float32 tensor.
 * Integer masks are refused (PyTorch too: only bool and floating masks). */
static int as_mask(PyObject *o, const char *op, const char *name, HmTensor **out) {
    *out = NULL;
    if (o == Py_None) return 0;
    if (PyArray_Check(o)) {
        int t = PyArray_TYPE((PyArrayObject *)o);
        if (t != NPY_BOOL && !PyTypeNum_ISFLOAT(t)) {
            PyErr_Format(PyExc_TypeError,
                         "%s(): argument '%s' must be a bool or float mask, got an array of dtype %S "
                         "(bool: True = not allowed; float: added to the attention scores)",
                         op, name, (PyObject *)PyArray_DESCR((PyArrayObject *)o));
            return -1;
        }
    }
    HmTensor *m = hm_as_tensor(o, op, name);
    if (!m) return -1;
    if (HM_DTYPE(m) != NPY_BOOL && HM_DTYPE(m) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError,
                     "%s(): argument '%s' must be a bool or float mask, got dtype %S "
                     "(bool: True = not allowed; float: added to the attention scores)",
                     op, name, (PyObject *)PyArray_DESCR(m->arr));
        Py_DECREF(m);
        return -1;
    }
    *out = m;
    return 0;
}

static int shape_is(HmTensor *t, int nd, const npy_intp *want) {
    if (HM_NDIM(t) != nd) return 0;
    for (int d = 0; d < nd; d++)
        if (HM_SHAPE(t)[d] != want[d]) return 0;
    return 1;
}

/* Float [B*H, L, S] = attn_mask (float values, or -inf where a bool mask is
 * True; shared [L, S] or per head) + key_padding_mask[b][j] (float). This is
 * the merge PyTorch does; it only runs when the key padding mask is float. */
static void fold_masks(float *out, const float *kpm, const uint8_t *bm, const float *fm, int per_head, int64_t B,
                       int64_t H, int64_t L, int64_t S) {
    const int64_t LS = L * S;
    #pragma omp parallel for schedule(static) if (B * H * LS > 65536)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H;
        const int64_t base = per_head ? bh * LS : 0;
        float *o = out + bh * LS;
        for (int64_t i = 0; i < L; i++) {
            for (int64_t j = 0; j < S; j++) {
                float m = 0.0f;
                if (fm) m = fm[base + i * S + j];
                else if (bm && bm[base + i * S + j]) m = -INFINITY;
                o[i * S + j] = m + kpm[b * S + j];
            }
        }
    }
}

/* attention() (packed == 0) and attention_packed() (packed == 1). */
static PyObject *attention_impl(PyObject *args, PyObject *kw, int packed) {
    static char *kwlist[] = {"query", "key", "value", "num_heads", "key_padding_mask", "attn_mask", "is_causal",
                             "dropout_p", "need_weights", "scale", "weights_after_dropout", "op", "names", NULL};
    static char *kwlist_packed[] = {"qkv", "kv", "num_heads", "key_padding_mask", "attn_mask", "is_causal",
                                    "dropout_p", "need_weights", "scale", "weights_after_dropout", "op", "names",
                                    NULL};
    PyObject *qo, *ko = Py_None, *vo = Py_None, *kpmo = Py_None, *amo = Py_None, *scaleo = Py_None,
             *nameso = Py_None;
    Py_ssize_t H;
    int is_causal = 0, need_weights = 0, after_dropout = 1;
    double dropout_p = 0.0;
    const char *op = packed ? "attention_packed" : "attention";
    if (!packed && !PyArg_ParseTupleAndKeywords(args, kw, "OOOn|OOpdpOpsO:attention", kwlist, &qo, &ko, &vo, &H,
                                                &kpmo, &amo, &is_causal, &dropout_p, &need_weights, &scaleo,
                                                &after_dropout, &op, &nameso))
        return NULL;
    if (packed && !PyArg_ParseTupleAndKeywords(args, kw, "OOn|OOpdpOpsO:attention_packed", kwlist_packed, &qo, &ko,
                                               &H, &kpmo, &amo, &is_causal, &dropout_p, &need_weights, &scaleo,
                                               &after_dropout, &op, &nameso))
        return NULL;
    const int layout = !packed ? LAYOUT_SEPARATE : ko == Py_None ? LAYOUT_QKV : LAYOUT_Q_KV;
    const int nin = layout_ninputs(layout);
    const char *nm[5] = {"query", "key", "value", "key_padding_mask", "attn_mask"};
    if (layout == LAYOUT_QKV) nm[0] = "qkv";
    if (layout == LAYOUT_Q_KV) nm[1] = "kv";
    if (nameso != Py_None) {
        if (!PyTuple_Check(nameso) || PyTuple_GET_SIZE(nameso) != 5) {
            PyErr_SetString(PyExc_TypeError, "attention(): names must be a tuple of 5 strings");
            return NULL;
        }
        for (int i = 0; i < 5; i++) {
            nm[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(nameso, i));
            if (!nm[i]) return NULL;
        }
    }
    if (H < 1) {
        PyErr_Format(PyExc_ValueError, "%s(): num_heads must be a positive int, got %zd", op, H);
        return NULL;
    }
    if (!(dropout_p >= 0.0 && dropout_p <= 1.0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", dropout_p);
        PyErr_Format(PyExc_ValueError, "%s(): dropout_p must be in [0, 1], got %s", op, buf);
        return NULL;
    }
    double scale = 0.0;
    int have_scale = 0;
    if (scaleo != Py_None) {
        scale = PyFloat_AsDouble(scaleo);
        if (scale == -1.0 && PyErr_Occurred()) return NULL;
        if (!isfinite(scale)) {
            PyErr_Format(PyExc_ValueError, "%s(): scale must be a finite number or None, got %R", op, scaleo);
            return NULL;
        }
        have_scale = 1;
    }

    HmTensor *q = NULL, *k = NULL, *v = NULL, *kpm = NULL, *am = NULL;
    PyArrayObject *out = NULL, *lse = NULL, *probs = NULL, *folded = NULL;
    PyObject *result = NULL;
    char s1[160], s2[160];

    if (!(q = hm_as_float_tensor(qo, op, nm[0]))) goto done;
    if (layout != LAYOUT_QKV && !(k = hm_as_float_tensor(ko, op, nm[1]))) goto done;
    if (layout == LAYOUT_SEPARATE && !(v = hm_as_float_tensor(vo, op, nm[2]))) goto done;
    if (HM_NDIM(q) != 3) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be 3-D (batch, target length, %s), got shape %s", op,
                     nm[0], layout == LAYOUT_QKV ? "3 * embed_dim" : "embed_dim",
                     hm_shape_str(HM_NDIM(q), HM_SHAPE(q), s1, sizeof s1));
        goto done;
    }
    const int64_t B = HM_SHAPE(q)[0], L = HM_SHAPE(q)[1];
    int64_t E = HM_SHAPE(q)[2];
    if (layout == LAYOUT_QKV) {
        if (E % 3 != 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s(): argument 'qkv' has shape %s, its last dim must be 3 * embed_dim (q, k and v side by "
                         "side)", op, hm_shape_str(HM_NDIM(q), HM_SHAPE(q), s1, sizeof s1));
            goto done;
        }
        E /= 3;
    }
    if (E % H != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): embed_dim %lld (last dim of '%s') is not divisible by num_heads %zd "
                     "(each head gets embed_dim / num_heads features)", op, (long long)E, nm[0], H);
        goto done;
    }
    const int64_t kcols = layout == LAYOUT_Q_KV ? 2 * E : E;
    if (k && (HM_NDIM(k) != 3 || HM_SHAPE(k)[0] != B || HM_SHAPE(k)[2] != kcols)) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): argument '%s' has shape %s, expected (%lld, S, %lld) (batch and %sembed_dim of '%s')",
                     op, nm[1], hm_shape_str(HM_NDIM(k), HM_SHAPE(k), s1, sizeof s1), (long long)B,
                     (long long)kcols, layout == LAYOUT_Q_KV ? "2 * " : "", nm[0]);
        goto done;
    }
    const int64_t S = k ? HM_SHAPE(k)[1] : L, D = E / H;
    if (v && !shape_is(v, 3, HM_SHAPE(k))) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has shape %s, expected %s (the shape of '%s')", op, nm[2],
                     hm_shape_str(HM_NDIM(v), HM_SHAPE(v), s1, sizeof s1),
                     hm_shape_str(3, HM_SHAPE(k), s2, sizeof s2), nm[1]);
        goto done;
    }
    if (!have_scale) scale = D > 0 ? 1.0 / sqrt((double)D) : 1.0;

    if (as_mask(kpmo, op, nm[3], &kpm) < 0) goto done;
    if (as_mask(amo, op, nm[4], &am) < 0) goto done;
    if (kpm) {
        npy_intp want[2] = {(npy_intp)B, (npy_intp)S};
        if (!shape_is(kpm, 2, want)) {
            PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has shape %s, expected (batch, source length) = %s",
                         op, nm[3], hm_shape_str(HM_NDIM(kpm), HM_SHAPE(kpm), s1, sizeof s1),
                         hm_shape_str(2, want, s2, sizeof s2));
            goto done;
        }
    }
    int per_head = 0;
    if (am) {
        npy_intp w2[2] = {(npy_intp)L, (npy_intp)S}, w3[3] = {(npy_intp)(B * H), (npy_intp)L, (npy_intp)S};
        if (shape_is(am, 2, w2)) per_head = 0;
        else if (shape_is(am, 3, w3)) per_head = 1;
        else {
            char s3[160];
            PyErr_Format(PyExc_ValueError,
                         "%s(): argument '%s' has shape %s, expected (target length, source length) = %s or "
                         "(batch * num_heads, target length, source length) = %s",
                         op, nm[4], hm_shape_str(HM_NDIM(am), HM_SHAPE(am), s1, sizeof s1),
                         hm_shape_str(2, w2, s2, sizeof s2), hm_shape_str(3, w3, s3, sizeof s3));
            goto done;
        }
    }
    /* Masks are constants: the kernel has no gradient for them. Refuse rather
     * than silently return no gradient for a learned float bias. */
    HmTensor *fl[2] = {kpm, am};
    for (int i = 0; i < 2; i++) {
        if (fl[i] && HM_DTYPE(fl[i]) == NPY_FLOAT32 && fl[i]->requires_grad && hm_grad_enabled()) {
            PyErr_Format(PyExc_NotImplementedError,
                         "%s(): argument '%s' requires grad, but hepml's attention treats masks as constants "
                         "(pass %s.detach())", op, nm[3 + i], nm[3 + i]);
            goto done;
        }
    }

    /* Kernel mask pointers. */
    const uint8_t *kpm_p = NULL, *bm_p = NULL;
    const float *fm_p = NULL;
    PyObject *kpm_keep = NULL, *bm_keep = NULL, *fm_keep = NULL; /* what the node must keep alive */
    if (kpm && HM_DTYPE(kpm) == NPY_FLOAT32) {
        npy_intp fs[3] = {(npy_intp)(B * H), (npy_intp)L, (npy_intp)S};
        if (!(folded = hm_empty(3, fs, NPY_FLOAT32))) goto done;
        fold_masks(AF32(folded), HM_F32(kpm), am && HM_DTYPE(am) == NPY_BOOL ? (const uint8_t *)PyArray_DATA(am->arr)
                                                                              : NULL,
                   am && HM_DTYPE(am) == NPY_FLOAT32 ? HM_F32(am) : NULL, per_head, B, H, L, S);
        fm_p = AF32(folded);
        fm_keep = (PyObject *)folded;
        per_head = 1;
    } else {
        if (kpm) {
            kpm_p = (const uint8_t *)PyArray_DATA(kpm->arr);
            kpm_keep = (PyObject *)kpm;
        }
        if (am && HM_DTYPE(am) == NPY_BOOL) {
            bm_p = (const uint8_t *)PyArray_DATA(am->arr);
            bm_keep = (PyObject *)am;
        } else if (am) {
            fm_p = HM_F32(am);
            fm_keep = (PyObject *)am;
        }
    }

    npy_intp oshape[3] = {(npy_intp)B, (npy_intp)L, (npy_intp)E};
    npy_intp lshape[3] = {(npy_intp)B, (npy_intp)H, (npy_intp)L};
    npy_intp pshape[4] = {(npy_intp)B, (npy_intp)H, (npy_intp)L, (npy_intp)S};
    if (!(out = hm_empty(3, oshape, NPY_FLOAT32))) goto done;
    if (!(lse = hm_empty(3, lshape, NPY_FLOAT32))) goto done;
    if (need_weights && !(probs = hm_empty(4, pshape, NPY_FLOAT32))) goto done;

    const int dropout_on = dropout_p > 0.0 && S > 0 && B * H * L > 0;
    uint64_t seed = 0, offset = 0;
    if (dropout_on) hm_rng_reserve(hm_attention_dropout_counters(B, H, L, S), &seed, &offset);
    const float *qp = HM_F32(q), *kp, *vp;
    int64_t ldq = E, ldk = E, ldv = E;
    if (layout == LAYOUT_SEPARATE) {
        kp = HM_F32(k);
        vp = HM_F32(v);
    } else if (layout == LAYOUT_QKV) {
        kp = qp + E;
        vp = qp + 2 * E;
        ldq = ldk = ldv = 3 * E;
    } else {
        kp = HM_F32(k);
        vp = kp + E;
        ldk = ldv = 2 * E;
    }
    if (hm_attention_forward_strided(AF32(out), probs ? AF32(probs) : NULL, AF32(lse), qp, ldq, kp, ldk, vp, ldv,
                                     kpm_p, bm_p, fm_p, per_head, is_causal, B, H, L, S, D, (float)scale,
                                     dropout_on ? (float)dropout_p : 0.0f, seed, offset) < 0) {
        PyErr_Format(PyExc_MemoryError, "%s(): could not allocate attention scratch memory", op);
        goto done;
    }
    if (probs && dropout_on && after_dropout) {
        /* PyTorch's need_weights returns the probabilities after dropout: the
         * kernel's keep decisions are hm_rand_dropout_mask laid out as
         * [B, H, L, S] (attention.h), so regenerate them and apply them. */
        int64_t np_ = (int64_t)B * H * L * S;
        float *mask = (float *)hm_scratch((size_t)np_ * sizeof(float));
        if (!mask) {
            PyErr_NoMemory();
            goto done;
        }
        hm_rand_dropout_mask(mask, np_, seed, offset, (float)dropout_p);
        hm_dropout_apply(AF32(probs), AF32(probs), mask, np_);
        hm_scratch_free(mask);
    }

    PyObject *inputs[3] = {(PyObject *)q, (PyObject *)k, (PyObject *)v};
    HmNode *node = hm_node_new("AttentionBackward", attention_backward, inputs, nin);
    if (!node && PyErr_Occurred()) goto done;
    if (node) {
        node->i[AI_B] = B; node->i[AI_H] = H; node->i[AI_L] = L; node->i[AI_S] = S; node->i[AI_D] = D;
        node->i[AI_PER_HEAD] = per_head;
        node->i[AI_CAUSAL] = is_causal;
        node->i[AI_SEED] = (int64_t)seed;
        node->i[AI_OFFSET] = (int64_t)offset;
        node->f[AF_SCALE] = scale;
        node->f[AF_DROPOUT] = dropout_on ? dropout_p : 0.0;
        node->i[AI_LAYOUT] = layout;
        int ok = 1;
        for (int i = 0; i < nin && ok; i++) ok = hm_node_save(node, inputs[i]) == 0;
        ok = ok && hm_node_save(node, (PyObject *)lse) == 0;
        int slot = nin + 1;
        node->i[AI_KPM_SLOT] = node->i[AI_BMASK_SLOT] = node->i[AI_FMASK_SLOT] = -1;
        if (ok && kpm_keep) { node->i[AI_KPM_SLOT] = slot++; ok = hm_node_save(node, kpm_keep) == 0; }
        if (ok && bm_keep) { node->i[AI_BMASK_SLOT] = slot++; ok = hm_node_save(node, bm_keep) == 0; }
        if (ok && fm_keep) { node->i[AI_FMASK_SLOT] = slot++; ok = hm_node_save(node, fm_keep) == 0; }
        if (!ok) {
            Py_DECREF(node);
            goto done;
        }
    }
    PyObject *ot = hm_wrap_with_node(out, (PyObject *)node);
    out = NULL;
    if (!ot) goto done;
    PyObject *wt = Py_None;
    if (probs) {
        wt = hm_wrap(probs);
        probs = NULL;
        if (!wt) {
            Py_DECREF(ot);
            goto done;
        }
    } else {
        Py_INCREF(Py_None);
    }
    result = PyTuple_New(2);
    if (!result) {
        Py_DECREF(ot);
        Py_DECREF(wt);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, ot);
    PyTuple_SET_ITEM(result, 1, wt);
done:
    Py_XDECREF(q);
    Py_XDECREF(k);
    Py_XDECREF(v);
    Py_XDECREF(kpm);
    Py_XDECREF(am);
    Py_XDECREF(out);
    Py_XDECREF(lse);
    Py_XDECREF(probs);
    Py_XDECREF(folded);
    return result;
}

static PyObject *py_attention(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    return attention_impl(args, kw, 0);
}

static PyObject *py_attention_packed(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    return attention_impl(args, kw, 1);
}

#define KW (PyCFunction)(void (*)(void))
PyMethodDef hm_methods_attention[] = {
    {"attention", KW py_attention, METH_VARARGS | METH_KEYWORDS,
     "attention(query, key, value, num_heads, key_padding_mask=None, attn_mask=None, is_causal=False, "
     "dropout_p=0.0, need_weights=False, scale=None, weights_after_dropout=True, op='attention', names=None)\n"
     "Fused multi-head scaled-dot-product attention on batch-first [B, T, E] projections; returns "
     "(out [B, L, E], weights [B, H, L, S] or None)."},
    {"attention_packed", KW py_attention_packed, METH_VARARGS | METH_KEYWORDS,
     "attention_packed(qkv, kv, num_heads, key_padding_mask=None, attn_mask=None, is_causal=False, dropout_p=0.0, "
     "need_weights=False, scale=None, weights_after_dropout=True, op='attention_packed', names=None)\n"
     "attention() on packed projections read in place: kv None: qkv is [B, L, 3E] (q, k, v side by side); "
     "otherwise qkv is the query [B, L, E] and kv is [B, S, 2E] (k, v side by side). Gradients come back packed "
     "the same way."},
    {NULL, NULL, 0, NULL},
};
#undef KW
