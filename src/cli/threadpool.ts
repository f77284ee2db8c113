// Imported first by the CLI, before anything touches libuv's thread pool (it is sized on first
// use). blockport keeps a file's fsync running in the background while it reads and writes the
// next ones; with the default 4 threads those fsyncs starve the reads and writes (blockify of a
// 553 MB image: 3.9 s with 4 threads, 3.6 s with 8). A user's own setting wins.
process.env.UV_THREADPOOL_SIZE ??= '8';
