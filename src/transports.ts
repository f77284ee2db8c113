import { registerTransport } from './oci/transport.js';
import { dockerArchiveTransport } from './oci/transports/docker-archive.js';
import { ociArchiveTransport } from './oci/transports/oci-archive.js';
import { ociTransport } from './oci/transports/oci.js';
import { dockerTransport } from './registry/transport.js';
import { storeTransport } from './store/transport.js';

/**
 * The places blockport reads and writes, registered once for the CLI and the library. A new
 * transport is one file implementing `Transport` and one line here.
 */
registerTransport(ociTransport);
registerTransport(ociArchiveTransport);
registerTransport(dockerArchiveTransport);
registerTransport(storeTransport);
registerTransport(dockerTransport);
