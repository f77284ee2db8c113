/** The shared ring between the main thread and the hashing thread (offload.ts, hash-thread.ts). */
export interface RingLayout {
  shared: SharedArrayBuffer;
  slots: number;
  slotSize: number;
}

/** Int32 indexes of the control words: slots written, slots hashed, two wait flags; then (id, length) per slot. */
export const HEAD = 0;
export const TAIL = 1;
/** Set while the hashing thread sleeps on HEAD / the main thread waits on TAIL: notify only then (a wake is a system call). */
export const THREAD_WAITS = 2;
export const MAIN_WAITS = 3;
export const META = 4;
/** Lengths that are commands: finish the hash and post its digest; forget the hash. */
export const END = -1;
export const DROP = -2;
