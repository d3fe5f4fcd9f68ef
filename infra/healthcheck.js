// The image's HEALTHCHECK: exits 0 once a TCP connection to the gRPC port opens, 1 otherwise. It
// connects to 127.0.0.1 on the port of TESSERA_LISTEN, so the listen host must be 0.0.0.0 or a
// loopback address. It checks liveness only, not that S3 or Redis can be reached.
import { connect } from 'node:net';

const TIMEOUT_MS = 2_000;
const port = Number(process.env.TESSERA_LISTEN?.split(':').pop()) || 8980;

const socket = connect(port, '127.0.0.1');
socket.setTimeout(TIMEOUT_MS);
socket.once('connect', () => {
  socket.destroy();
  process.exitCode = 0;
});
socket.once('timeout', () => {
  socket.destroy();
  process.exitCode = 1;
});
socket.once('error', () => {
  process.exitCode = 1;
});
