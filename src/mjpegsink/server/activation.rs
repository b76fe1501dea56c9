// SPDX-License-Identifier: MPL-2.0

//! Socket activation (`listen-fd`): a listening socket passed by the parent
//! as systemd does (`LISTEN_FDS`, `LISTEN_PID`, descriptors from 3 on).
//! `listenfd` wraps the descriptor (no `unsafe` here); it is taken once and
//! kept for the life of the process, and every server gets a duplicate
//! (`try_clone`), so an element can stop and start again on it.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener as StdTcpListener;
use std::sync::{LazyLock, Mutex};

use listenfd::ListenFd;

use crate::runtime::lock;

/// systemd's `SD_LISTEN_FDS_START`: the first passed descriptor.
const FIRST_FD: i32 = 3;

/// The passed descriptors not taken yet, and those taken.
pub(crate) struct Inherited {
    passed: ListenFd,
    taken: HashMap<i32, StdTcpListener>,
}

static INHERITED: LazyLock<Mutex<Inherited>> = LazyLock::new(|| {
    Mutex::new(Inherited {
        passed: ListenFd::from_env(),
        taken: HashMap::new(),
    })
});

/// A duplicate of the listening TCP socket passed as descriptor `fd`,
/// non-blocking, ready for [`Server::start`](super::Server::start).
pub fn inherited(fd: i32) -> io::Result<StdTcpListener> {
    lock(&INHERITED).listener(fd)
}

impl Inherited {
    fn listener(&mut self, fd: i32) -> io::Result<StdTcpListener> {
        if let Some(l) = self.taken.get(&fd) {
            return l.try_clone();
        }
        let Some(idx) = fd
            .checked_sub(FIRST_FD)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd}: passed sockets start at {FIRST_FD}"),
            ));
        };
        let l = match self.passed.take_tcp_listener(idx) {
            Ok(Some(l)) => l,
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "descriptor {fd} was not passed to this process (LISTEN_FDS={} for \
                         this pid)",
                        self.passed.len()
                    ),
                ));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("descriptor {fd} is not a TCP socket: {e}"),
                ));
            }
        };
        self.insert(fd, l)?;
        self.listener(fd)
    }

    /// Keeps `l` as descriptor `fd` once it is known to be listening.
    fn insert(&mut self, fd: i32, l: StdTcpListener) -> io::Result<()> {
        if !socket2::SockRef::from(&l).is_listener()? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is a TCP socket that is not listening"),
            ));
        }
        l.set_nonblocking(true)?;
        self.taken.insert(fd, l);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Inherited {
        Inherited {
            passed: ListenFd::empty(),
            taken: HashMap::new(),
        }
    }

    #[test]
    fn not_passed_or_below_3_is_a_clear_error() {
        let mut i = empty();
        let e = i.listener(3).expect_err("nothing passed");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("descriptor 3 was not passed"), "{e}");
        let e = i.listener(1).expect_err("stdout");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// Each start gets its own duplicate of the one kept socket: closing
    /// one does not close the port.
    #[test]
    fn every_start_gets_a_duplicate() {
        let mut i = empty();
        let l = StdTcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        i.insert(7, l).expect("a listening socket");
        let first = i.listener(7).expect("first start");
        drop(first);
        let second = i.listener(7).expect("second start");
        assert_eq!(second.local_addr().expect("addr"), addr);
        std::net::TcpStream::connect(addr).expect("still listening");
    }

    #[test]
    fn a_socket_that_does_not_listen_is_refused() {
        let mut i = empty();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let e = i.insert(5, s.into()).expect_err("not listening");
        assert!(e.to_string().contains("not listening"), "{e}");
    }
}
