/*
 * Optimiser updates, one parameter tensor at a time, in place. Semantics are
 * torch.optim's (SGD with momentum/dampening/nesterov/weight decay; Adam with
 * L2 weight decay; AdamW with decoupled weight decay), so the same
 * hyper-parameters give the same trajectories.
 */
#ifndef HM_OPTIM_H
#define HM_OPTIM_H
#include <stdint.h>

/* p -= lr * update; momentum_buf may be NULL when momentum == 0. first_step
 * makes the buffer start as the gradient (torch's convention). */
void hm_sgd_step(float *p, const float *g, float *momentum_buf, int64_t n, float lr, float momentum,
                 float dampening, float weight_decay, int nesterov, int first_step);

/* Adam / AdamW. step is the 1-based step count after this update. amsgrad:
 * max_exp_avg_sq is kept when non-NULL. decoupled = 1 for AdamW. */
void hm_adam_step(float *p, const float *g, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq, int64_t n,
                  int64_t step, float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled);

/* Adamax (torch.optim.Adamax): infinity-norm second moment u = max(beta2 u, |g| + eps). */
void hm_adamax_step(float *p, const float *g, float *exp_avg, float *exp_inf, int64_t n, int64_t step, float lr,
                    float beta1, float beta2, float eps, float weight_decay);

/* Scale every gradient by min(1, max_norm / total_norm): used by
 * clip_grad_norm_. Returns nothing; the norm is computed separately. */
double hm_sum_squares(const float *x, int64_t n);
void hm_scale_inplace(float *x, int64_t n, float scale);
#endif
