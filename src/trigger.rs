//! Trigger requests (Postfix: `qmgr.c` `qmgr_trigger_event`, `mail_proto.h`).
//!
//! Each byte written to `public/qmgr` is one request. All bytes of one read
//! are folded into two flag sets before anything acts, so duplicates
//! collapse and `A`/`F` take effect before the `D`/`I` that start scans, in
//! whatever order the bytes came ("FADI" and "IDAF" mean the same). Unknown
//! bytes, NULs included (socket clients append one), are ignored: a garbage
//! trigger must never stop the queue manager.

use crate::scan::ScanFlags;

/// The flags one trigger buffer asks of each scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerRequest {
    /// Flags for the incoming scan.
    pub incoming: ScanFlags,
    /// Flags for the deferred scan.
    pub deferred: ScanFlags,
}

impl TriggerRequest {
    /// Folds a buffer of request bytes into per-scan flags.
    pub fn decode(bytes: &[u8]) -> TriggerRequest {
        let mut req = TriggerRequest::default();
        let flush = ScanFlags::FLUSH_ONCE | ScanFlags::FLUSH_DFXP;
        for &byte in bytes {
            match byte {
                b'I' | b'W' => req.incoming |= ScanFlags::START,
                b'D' => req.deferred |= ScanFlags::START,
                b'A' => {
                    req.incoming |= ScanFlags::ALL;
                    req.deferred |= ScanFlags::ALL;
                }
                b'F' => {
                    req.incoming |= flush;
                    req.deferred |= flush;
                }
                _ => {}
            }
        }
        req
    }

    /// True when either scan asks to forget dead state now.
    pub fn flush_dead(&self) -> bool {
        (self.incoming | self.deferred).contains(ScanFlags::FLUSH_ONCE)
    }
}

/// The printable form of trigger bytes for traces: request letters kept,
/// anything else shown as `\xNN`.
pub fn render(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fadi_and_idaf_are_the_same_request() {
        assert_eq!(
            TriggerRequest::decode(b"FADI\0"),
            TriggerRequest::decode(b"IDAF")
        );
        let req = TriggerRequest::decode(b"FADI\0");
        assert!(req.incoming.contains(ScanFlags::START | ScanFlags::ALL));
        assert!(req
            .deferred
            .contains(ScanFlags::START | ScanFlags::FLUSH_ONCE));
        assert!(req.flush_dead());
    }

    #[test]
    fn wakeup_is_incoming_and_garbage_is_ignored() {
        let req = TriggerRequest::decode(b"W\0zz\xff");
        assert_eq!(req.incoming, ScanFlags::START);
        assert_eq!(req.deferred, ScanFlags::NONE);
        assert_eq!(
            TriggerRequest::decode(b"\0\0xyz"),
            TriggerRequest::default()
        );
    }
}
