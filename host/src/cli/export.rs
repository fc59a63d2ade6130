//! `ringnn export`: a trained mlp as firmware source.

use super::*;

/// Arguments of `ringnn export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The checkpoint folder of a `ringnn train --engine plain --model mlp` run.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The Rust source file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How many test inputs to include.
    #[arg(long, default_value_t = 16)]
    pub inputs: usize,
    /// Folder with the datasets (else RINGNN_DATA), for checkpoints trained on MNIST.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub(super) fn export_command(a: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let s = crate::export::export(&a.checkpoint, &a.out, a.inputs, a.data_dir.as_deref())?;
    writeln!(
        out,
        "wrote {} ({} bytes): mlp {:?} on {}, f={}, {} parameters, {} inputs ({} predicted correctly on the host)",
        s.out.display(),
        s.bytes,
        s.layer_sizes,
        s.data,
        s.frac_bits,
        s.parameters,
        s.predictions.len(),
        s.correct()
    )?;
    Ok(())
}
