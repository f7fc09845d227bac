//! The ops, one file per op family; each records its kernels through [`crate::Gpu::dispatch`] with a
//! typed parameter struct.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
