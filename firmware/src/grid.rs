//! The input grids of the precision study.
//!
//! Points are `k / 128` for integers `k`, so every point is exact in `f32` and in every
//! fixed-point format with at least 7 fractional bits: the study measures the arithmetic,
//! not the rounding of its inputs. Grids cover the domains on which the kernel states its
//! error bounds ([`EXP_DOMAIN`](ringnn_core::approx::EXP_DOMAIN),
//! [`TANH_DOMAIN`](ringnn_core::approx::TANH_DOMAIN)), ends included.

use ringnn_core::approx::{EXP_DOMAIN, TANH_DOMAIN};

/// Grid points per unit: the step is `1 / STEPS_PER_UNIT`.
pub const STEPS_PER_UNIT: u32 = 128;

/// Points handed to one evaluation call; every buffer of [`crate::study::Buffers`] holds
/// one chunk.
pub const CHUNK: usize = 64;

/// `lo, lo + step, ..., hi` with `step = 1 / STEPS_PER_UNIT`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Grid {
    /// The first point, in steps.
    pub first: i32,
    /// Number of points.
    pub points: usize,
}

impl Grid {
    /// The grid over `[lo, hi]`; both ends must be multiples of the step (the kernel's
    /// domains are integers).
    pub const fn over(domain: (f64, f64)) -> Self {
        let first = (domain.0 * STEPS_PER_UNIT as f64) as i32;
        let last = (domain.1 * STEPS_PER_UNIT as f64) as i32;
        Grid {
            first,
            points: (last - first + 1) as usize,
        }
    }

    /// Point `i` (exact in `f32`: `|first + i| < 2^24`).
    pub fn point(&self, i: usize) -> f32 {
        (self.first + i as i32) as f32 / STEPS_PER_UNIT as f32
    }
}

/// The grid for e^x: [-6, 4], 1281 points.
pub const EXP_GRID: Grid = Grid::over(EXP_DOMAIN);
/// The grid for tanh: [-4, 4], 1025 points.
pub const TANH_GRID: Grid = Grid::over(TANH_DOMAIN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_the_kernel_domains_exactly() {
        assert_eq!(EXP_GRID.points, 1281);
        assert_eq!(EXP_GRID.point(0), -6.0);
        assert_eq!(EXP_GRID.point(EXP_GRID.points - 1), 4.0);
        assert_eq!(TANH_GRID.points, 1025);
        assert_eq!(TANH_GRID.point(512), 0.0);
        assert_eq!(TANH_GRID.point(513), 1.0 / 128.0);
    }
}
