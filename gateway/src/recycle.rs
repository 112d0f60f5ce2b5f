//! Per-thread spares of the two buffers every forwarded request needs and drops again: the
//! request's header map (filled as its head is read, emptied once the head has been written
//! upstream) and the upstream head's bytes. Taking a spare keeps its allocations; a thread
//! keeps a few of each, so a burst frees what it cannot keep.

use std::cell::RefCell;

use http::HeaderMap;

/// Spares kept per thread, of each kind: about the requests one thread has in flight at a
/// time between reading a head and writing it upstream.
const KEEP: usize = 64;

/// A spare larger than this is freed rather than kept (a head with very many fields, or a
/// large body that went out with its head).
const KEEP_BYTES: usize = 16 * 1024;
const KEEP_FIELDS: usize = 64;

thread_local! {
    static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static BYTES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty header map with room for `fields` values.
pub fn header_map(fields: usize) -> HeaderMap {
    let spare = MAPS.try_with(|m| m.borrow_mut().pop()).ok().flatten();
    match spare {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Gives a header map back; it is emptied here.
pub fn give_header_map(mut map: HeaderMap) {
    if map.capacity() > KEEP_FIELDS {
        return;
    }
    map.clear();
    let _ = MAPS.try_with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < KEEP {
            m.push(map);
        }
    });
}

/// An empty byte buffer with room for `len` bytes.
pub fn bytes(len: usize) -> Vec<u8> {
    let spare = BYTES.try_with(|b| b.borrow_mut().pop()).ok().flatten();
    match spare {
        Some(mut buf) => {
            buf.reserve(len);
            buf
        }
        None => Vec::with_capacity(len),
    }
}

/// Gives a byte buffer back; it is emptied here.
pub fn give_bytes(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_BYTES {
        return;
    }
    buf.clear();
    let _ = BYTES.try_with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < KEEP {
            b.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_spare_map_comes_back_empty_with_its_room() {
        let mut map = header_map(4);
        for i in 0..6 {
            map.append(
                http::header::ACCEPT,
                HeaderValue::from_str(&i.to_string()).unwrap(),
            );
        }
        map.insert(http::header::HOST, HeaderValue::from_static("a"));
        let room = map.capacity();
        give_header_map(map);
        let again = header_map(2);
        assert!(again.is_empty());
        assert_eq!(again.keys_len(), 0);
        assert!(again.get(http::header::ACCEPT).is_none());
        assert!(again.capacity() >= room);
    }

    #[test]
    fn a_spare_buffer_comes_back_empty_and_a_large_one_is_not_kept() {
        let mut buf = bytes(100);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let room = buf.capacity();
        give_bytes(buf);
        let again = bytes(10);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        give_bytes(Vec::with_capacity(KEEP_BYTES + 1));
        assert!(bytes(1).capacity() < KEEP_BYTES);
    }
}
