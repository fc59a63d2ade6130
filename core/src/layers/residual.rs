//! Glue between layers: the residual addition of ResNets and flattening of images.

use super::Image;
use crate::Engine;

/// The residual connection `y = x + skip` (ResNet's `F(x) + x`, after any projection of
/// the skip path, which is an ordinary layer).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Residual;

impl Residual {
    /// `y = x + skip`: local additions, free on every engine.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn forward<E: Engine + ?Sized>(
        e: &mut E,
        x: &[E::Elem],
        skip: &[E::Elem],
        y: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        y.copy_from_slice(x);
        e.add_assign(y, skip)
    }

    /// The gradient of a sum is `dy` for both branches: `dx = dy` (overwritten) and
    /// `dskip += dy`. The skip branch's gradient *accumulates*, because the same tensor
    /// usually also feeds the residual branch, whose backward has written (or will add)
    /// its own contribution there.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn backward<E: Engine + ?Sized>(
        e: &mut E,
        dy: &[E::Elem],
        dx: &mut [E::Elem],
        dskip: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        dx.copy_from_slice(dy);
        e.add_assign(dskip, dy)
    }
}

/// Flattening NCHW images to `[batch x (channels * height * width)]` rows.
///
/// On row-major data this is the identity on the buffer: image `n` already occupies
/// elements `n * C*H*W .. (n + 1) * C*H*W` in the order `(c, y, x)`, which is exactly row
/// `n` of the flattened matrix. Forward and backward therefore copy nothing; callers
/// simply hand the same slice to the next layer (a dense layer after a convolution reads
/// its input as `batch x features()`), and the gradient slice back.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Flatten;

impl Flatten {
    /// Features per row after flattening: `channels * height * width`.
    pub const fn features(input: Image) -> usize {
        input.channels * input.height * input.width
    }

    /// The flattened shape as an image of `features x 1 x 1`.
    pub const fn output(input: Image) -> Image {
        Image::new(input.batch, Self::features(input), 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check, Case};
    use crate::Float;

    #[test]
    fn residual_gradient_matches_finite_differences() {
        // Inputs are [x | skip]; the output is their sum.
        let n = 12;
        check(
            &Case::new(2 * n, 0, n, 7),
            |xs, _, y| {
                let (x, skip) = xs.split_at(n);
                Residual::forward(&mut Float::<f64>::new(), x, skip, y).unwrap();
            },
            |_, _, dy, dxs, _| {
                let (dx, dskip) = dxs.split_at_mut(n);
                dskip.fill(0.0);
                Residual::backward(&mut Float::<f64>::new(), dy, dx, dskip).unwrap();
            },
        );
    }

    #[test]
    fn flatten_is_the_row_major_identity() {
        let input = Image::new(2, 3, 4, 5);
        assert_eq!(Flatten::features(input), 60);
        assert_eq!(Flatten::output(input), Image::new(2, 60, 1, 1));
        assert_eq!(Flatten::output(input).len(), input.len());
        // Element (n, c, y, x) of the image is element (n, (c * H + y) * W + x) of the rows.
        let (n, c, y, x) = (1, 2, 3, 4);
        let nchw = ((n * 3 + c) * 4 + y) * 5 + x;
        assert_eq!(nchw, n * 60 + (c * 4 + y) * 5 + x);
    }
}
