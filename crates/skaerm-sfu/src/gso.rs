//! Which of a worker's outgoing datagrams can leave as one UDP GSO send (generic segmentation
//! offload: one `sendmsg` with a `UDP_SEGMENT` size, the kernel cutting the buffer into
//! datagrams). Pure: the worker (`worker.rs`) asks and does the sending.
//!
//! A video frame forwarded to one subscriber is a handful of packets in a row to the same
//! address, all of one size but the last (encoders split a frame about evenly, and the relay
//! rewrites every packet of a leg alike): as one GSO send the frame crosses the kernel's UDP/IP
//! path once instead of once per packet. Only neighbours are grouped, so the order of what a
//! subscriber receives never changes.

use std::net::SocketAddr;

/// Most datagrams one GSO send carries (the kernel allows 64; a frame rarely has more than 10).
pub(crate) const MAX_SEGMENTS: usize = 16;
/// Most bytes one GSO send carries (the kernel's limit is one 64 KiB IP packet's worth).
pub(crate) const MAX_BYTES: usize = 60_000;

/// How a datagram to be sent looks to the grouping: where it goes, from which local address,
/// and how long it is.
pub(crate) trait Outgoing {
    fn to(&self) -> SocketAddr;
    fn from(&self) -> SocketAddr;
    fn len(&self) -> usize;
}

/// How many datagrams from the start of `queue` form one GSO run: same destination and source,
/// all of the first one's size except possibly a shorter last one, at most `max_segments` of
/// them. 1 when the first cannot be grouped with the next (or `max_segments` is 1: no GSO).
pub(crate) fn run_length<T: Outgoing>(queue: &[T], max_segments: usize) -> usize {
    let Some(first) = queue.first() else {
        return 0;
    };
    let size = first.len();
    let limit = max_segments.min(MAX_SEGMENTS).min(MAX_BYTES / size.max(1));
    let mut run = 1;
    while run < queue.len() && run < limit {
        let next = &queue[run];
        if next.to() != first.to() || next.from() != first.from() || next.len() > size {
            break;
        }
        run += 1;
        if next.len() < size {
            break; // a shorter datagram ends the run
        }
    }
    run
}

impl Outgoing for crate::media::core::Transmit {
    fn to(&self) -> SocketAddr {
        self.to
    }
    fn from(&self) -> SocketAddr {
        self.from
    }
    fn len(&self) -> usize {
        self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct D(u16, usize);

    impl Outgoing for D {
        fn to(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], self.0))
        }
        fn from(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 50_000))
        }
        fn len(&self) -> usize {
            self.1
        }
    }

    fn runs(queue: &[D], max: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = queue;
        while !rest.is_empty() {
            let n = run_length(rest, max);
            out.push(n);
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn a_frame_to_one_address_is_one_run_ending_at_its_short_last_packet() {
        let queue = [
            D(1, 1100),
            D(1, 1100),
            D(1, 1100),
            D(1, 400),
            D(1, 1100),
            D(1, 1100),
        ];
        assert_eq!(runs(&queue, 64), vec![4, 2]);
    }

    #[test]
    fn another_address_a_larger_packet_or_no_gso_ends_a_run() {
        let queue = [D(1, 900), D(2, 900), D(2, 900), D(2, 1000), D(2, 1000)];
        assert_eq!(runs(&queue, 64), vec![1, 2, 2]);
        assert_eq!(
            runs(&queue, 1),
            vec![1, 1, 1, 1, 1],
            "max 1 segment: GSO is off"
        );
        assert_eq!(run_length::<D>(&[], 64), 0);
    }

    #[test]
    fn a_run_is_bounded_in_segments_and_bytes() {
        let small: Vec<D> = (0..40).map(|_| D(1, 100)).collect();
        assert_eq!(runs(&small, 64), vec![16, 16, 8]);
        let big: Vec<D> = (0..60).map(|_| D(1, 1200)).collect();
        assert!(runs(&big, 64).iter().all(|n| n * 1200 <= MAX_BYTES));
        assert_eq!(runs(&big, 64).iter().sum::<usize>(), 60);
    }
}
