/*
 * The BLAS/LAPACK entry points hepml uses, under one set of names.
 *
 * By default hepml links the OpenBLAS of the `scipy-openblas32` wheel, whose
 * symbols carry a `scipy_` prefix (so it cannot clash with another OpenBLAS in
 * the same process, PyTorch's for instance). setup.py defines HM_SCIPY_OPENBLAS
 * in that case; with HEPML_BLAS=system it links a system OpenBLAS without prefix.
 */
#ifndef HM_BLAS_H
#define HM_BLAS_H

#include <cblas.h>

#ifdef HM_SCIPY_OPENBLAS
#define HM_BLAS_SYM(name) scipy_##name
#else
#define HM_BLAS_SYM(name) name
#endif

#define hm_cblas_sgemm HM_BLAS_SYM(cblas_sgemm)
#define hm_cblas_dgemm HM_BLAS_SYM(cblas_dgemm)
#define hm_cblas_sgemv HM_BLAS_SYM(cblas_sgemv)
#define hm_openblas_set_num_threads HM_BLAS_SYM(openblas_set_num_threads)
#define hm_openblas_get_num_threads HM_BLAS_SYM(openblas_get_num_threads)
#define hm_openblas_get_config HM_BLAS_SYM(openblas_get_config)
#define hm_openblas_get_corename HM_BLAS_SYM(openblas_get_corename)

/* LAPACK symmetric eigendecomposition in double (Fréchet distance, flows'
 * rotation init): row-major LAPACKE interface. */
int HM_BLAS_SYM(LAPACKE_dsyevd)(int matrix_layout, char jobz, char uplo, int n, double *a, int lda, double *w);
#define hm_lapacke_dsyevd HM_BLAS_SYM(LAPACKE_dsyevd)
#ifndef LAPACK_ROW_MAJOR
#define LAPACK_ROW_MAJOR 101
#endif

#endif
