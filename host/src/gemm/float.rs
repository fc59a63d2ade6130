//! f32 and f64 products, through `matrixmultiply` (with its threading feature), a
//! well-kept packed GEMM.

use ringnn_core::engine::MatDims;

/// `out = a * b` in f32 through `matrixmultiply`.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_f32(a: &[f32], b: &[f32], dims: MatDims, out: &mut [f32]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_f32: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the pointers come from slices whose lengths were checked against the
    // row-major strides (rows of k, n and n elements) passed alongside.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out = a * b` in f64 through `matrixmultiply`.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_f64(a: &[f64], b: &[f64], dims: MatDims, out: &mut [f64]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_f64: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: as in `matmul_f32`.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
