/*
 * The OpenMP queries kernels need to give each thread its own slice of a
 * caller-provided scratch buffer, written once so that a build without OpenMP
 * (one thread, id 0) needs no #ifdef in the kernels themselves.
 */
#ifndef HM_THREADS_H
#define HM_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#endif

/* Threads a parallel region started here would get (the scratch slots to provide). */
static inline int hm_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's number inside the current parallel region (0 outside one). */
static inline int hm_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
