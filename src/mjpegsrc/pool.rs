// SPDX-License-Identifier: MPL-2.0

//! The source's frame pool: a plain `GstBufferPool` that also counts how many
//! of its buffers are out (being filled, queued, or held downstream), so the
//! `stats` property can report free buffers the way py-mjpeg did.

use std::sync::atomic::{AtomicU32, Ordering};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct FramePool {
        pub(super) outstanding: AtomicU32,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for FramePool {
        const NAME: &'static str = "GstMjpegFramePool";
        type Type = super::FramePool;
        type ParentType = gst::BufferPool;
    }

    impl ObjectImpl for FramePool {}
    impl GstObjectImpl for FramePool {}

    impl BufferPoolImpl for FramePool {
        fn acquire_buffer(
            &self,
            params: Option<&gst::BufferPoolAcquireParams>,
        ) -> Result<gst::Buffer, gst::FlowError> {
            let buffer = self.parent_acquire_buffer(params)?;
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            Ok(buffer)
        }

        fn release_buffer(&self, buffer: gst::Buffer) {
            // Saturating: a buffer released while the pool was being
            // reconfigured must not wrap the count.
            let _ = self
                .outstanding
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
            self.parent_release_buffer(buffer)
        }
    }
}

glib::wrapper! {
    pub struct FramePool(ObjectSubclass<imp::FramePool>) @extends gst::BufferPool, gst::Object;
}

impl FramePool {
    /// An active pool of `count` buffers of `size` bytes each, all allocated
    /// up front (py-mjpeg's `request_buffers(size, count)`).
    pub(crate) fn new_active(size: u32, count: u32) -> Result<Self, glib::BoolError> {
        let pool: FramePool = glib::Object::new();
        let mut config = pool.config();
        config.set_params(None, size, count, count);
        pool.set_config(config)?;
        pool.set_active(true)?;
        Ok(pool)
    }

    /// Buffers not currently handed out.
    pub(crate) fn free_buffers(&self) -> u32 {
        let (_, _, _, max) = self.config().params().unwrap_or((None, 0, 0, 0));
        max.saturating_sub(self.imp().outstanding.load(Ordering::Relaxed))
    }

    /// A buffer now, or `None` if every buffer is out: never waits.
    pub(crate) fn try_acquire(&self) -> Option<gst::Buffer> {
        let params =
            gst::BufferPoolAcquireParams::with_flags(gst::BufferPoolAcquireFlags::DONTWAIT);
        self.acquire_buffer(Some(&params)).ok()
    }
}
