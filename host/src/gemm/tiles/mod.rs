//! The register tiles, one file per instruction set, and [`Kernel`], which picks them.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;

#[cfg(target_arch = "x86_64")]
use avx2::{kernel_avx2, kernel_avx2_narrow, kernel_f64};
use portable::kernel_portable;

use super::pack::Row8;
use super::{MR, MR_F64, NR};

/// Which register-tile kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Whether [`Kernel::run_f64`] is available: the AVX2 kernel on a CPU with FMA.
    pub(super) fn has_f64_tile(self) -> bool {
        match self {
            Kernel::Portable => false,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("fma"),
        }
    }

    /// `tile = A sliver * B sliver` from `f64` slivers (`MR` and `NR` values per `p`) whose
    /// partial sums are all integers of magnitude at most 2^51, so exact; converted back
    /// to the ring.
    ///
    /// # Panics
    /// Unless [`Kernel::has_f64_tile`].
    #[inline]
    pub(super) fn run_f64(self, a: &[f64], b: &[f64], tile: &mut [u64; MR_F64 * NR]) {
        match self {
            Kernel::Portable => unreachable!("the portable kernel has no f64 tile"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(self.has_f64_tile(), "f64 tile without FMA");
                // SAFETY: AVX2 as for `run`, FMA checked just above (a cached load).
                #[allow(unsafe_code)]
                unsafe {
                    kernel_f64(a, b, tile)
                }
            }
        }
    }

    /// `tile = A sliver * B sliver` over `b.len()` values of `p`; `narrow` says that every
    /// value of both slivers is a signed 32-bit integer ([`mag_or`](super::pack::mag_or)).
    #[inline]
    pub(super) fn run(self, a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR], narrow: bool) {
        match self {
            Kernel::Portable => kernel_portable(a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                // SAFETY: `Kernel::Avx2` is only constructed after `is_x86_feature_detected!`
                // reported AVX2 (in `detect`, and in tests under the same check); the narrow
                // kernel's precondition is what `narrow` says.
                #[allow(unsafe_code)]
                unsafe {
                    if narrow {
                        kernel_avx2_narrow(a, b, tile)
                    } else {
                        kernel_avx2(a, b, tile)
                    }
                }
            }
        }
    }
}
