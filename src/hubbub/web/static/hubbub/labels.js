// labels.js: the data channel labels of the peer protocol (docs/peer-protocol.md).

/** Every label starting with this is the library's own: apps may not open one. */
export const RESERVED_PREFIX = "hubbub-";
/** The channel the peer that offers first opens, so that its offer has a data section. */
export const CONTROL_LABEL = "hubbub-control";
/** One channel per file transfer, its id after the prefix. */
export const FILE_LABEL_PREFIX = "hubbub-file:";
