//! A peer whose every byte comes from the fuzz input: shared by the network targets.
use ringnn_host::mpc::Channel;
use std::io;

/// Writes go nowhere; reads come from the fuzz input, then end.
pub struct Replay<'a> {
    pub data: &'a [u8],
}

impl Channel for Replay<'_> {
    fn write_all(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > self.data.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input"));
        }
        let (head, rest) = self.data.split_at(buf.len());
        buf.copy_from_slice(head);
        self.data = rest;
        Ok(())
    }
}
