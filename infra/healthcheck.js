// The container's health check (the image's HEALTHCHECK and the ECS task definition both run it):
// exits 0 when GET /healthz on the operations HTTP port answers 200, 1 otherwise.
//
// It asks 127.0.0.1 on the port of TESSERA_HTTP_LISTEN, so that address must be 0.0.0.0 or a
// loopback one (the image sets 0.0.0.0:9090). /healthz means "the process serves"; it does not
// ask whether S3 and Redis are reachable (that is /readyz and grpc.health.v1, which the load
// balancer uses): a task that loses its backends should stop getting traffic, not be killed and
// restarted while the backend is down.
//
// With TESSERA_HTTP_LISTEN unset the server has no HTTP port; then the check falls back to
// opening a TCP connection to the gRPC port of TESSERA_LISTEN.
import { request } from 'node:http';
import { connect } from 'node:net';

const TIMEOUT_MS = 2_000;

const portOf = (address) => Number(address?.split(':').pop()) || undefined;
const httpPort = portOf(process.env.TESSERA_HTTP_LISTEN);

const done = (healthy) => {
  process.exitCode = healthy ? 0 : 1;
};

if (httpPort !== undefined) {
  const call = request(
    { host: '127.0.0.1', port: httpPort, path: '/healthz', method: 'GET', timeout: TIMEOUT_MS },
    (response) => {
      response.resume();
      done(response.statusCode === 200);
    },
  );
  call.once('timeout', () => call.destroy(new Error('timed out')));
  call.once('error', () => done(false));
  call.end();
} else {
  const socket = connect(portOf(process.env.TESSERA_LISTEN) ?? 8980, '127.0.0.1');
  socket.setTimeout(TIMEOUT_MS);
  socket.once('connect', () => {
    socket.destroy();
    done(true);
  });
  socket.once('timeout', () => {
    socket.destroy();
    done(false);
  });
  socket.once('error', () => done(false));
}
