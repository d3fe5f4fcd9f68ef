// Pure logic of multi-region caching: the peer settings and the circuit breaker.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, redactedSummary } from '../../src/config/load.ts';
import { CircuitBreaker } from '../../src/regions/circuit-breaker.ts';

const load = (env: Record<string, string>, argv: string[] = []) => loadConfig({ argv, env });

function configErrorOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

describe('region settings', () => {
  it('defaults to a single region named local with replication off', () => {
    const settings = load({});
    assert.equal(settings.region, 'local');
    assert.deepEqual(settings.peers, []);
    assert.equal(settings.peerTimeoutMs, 1500);
    assert.equal(settings.replication, 'off');
  });

  it('reads peers as a JSON array from the environment and from a flag', () => {
    const peers = [
      { name: 'eu-west-1', endpoint: 'grpcs://cache.eu.example:443', token: 's3cret' },
      { name: 'us-east-1', endpoint: 'grpc://10.0.0.7:8980', instanceName: 'ci' },
    ];
    assert.deepEqual(load({ TESSERA_PEERS: JSON.stringify(peers) }).peers, peers);
    assert.deepEqual(load({}, ['--peers', JSON.stringify(peers)]).peers, peers);
    const settings = load({ TESSERA_REGION: 'ap-south-1', TESSERA_REPLICATION: 'on' });
    assert.equal(settings.region, 'ap-south-1');
    assert.equal(settings.replication, 'on');
  });

  it('refuses a peer endpoint that is not grpc://HOST:PORT, naming the setting', () => {
    const message = configErrorOf(() =>
      load({ TESSERA_PEERS: '[{"name":"a","endpoint":"http://x:1","token":"hunter2"}]' }),
    );
    assert.match(message, /peers \(TESSERA_PEERS\)/);
    assert.match(message, /grpc:\/\/HOST:PORT/);
    assert.doesNotMatch(message, /hunter2/, 'a peer token must never be echoed');
  });

  it('refuses peers that are not JSON, and two peers with one name', () => {
    assert.match(
      configErrorOf(() => load({ TESSERA_PEERS: '[{' })),
      /JSON array of peers/,
    );
    const twice = JSON.stringify([
      { name: 'a', endpoint: 'grpc://h:1' },
      { name: 'a', endpoint: 'grpc://h:2' },
    ]);
    assert.match(
      configErrorOf(() => load({ TESSERA_PEERS: twice })),
      /unique/,
    );
  });

  it('redacts peer tokens in the startup summary', () => {
    const settings = load({
      TESSERA_PEERS: JSON.stringify([{ name: 'a', endpoint: 'grpc://h:1', token: 'hunter2' }]),
    });
    const summary = JSON.stringify(redactedSummary(settings));
    assert.doesNotMatch(summary, /hunter2/);
    assert.match(summary, /grpc:\/\/h:1/);
  });
});

describe('circuit breaker', () => {
  const breakerAt = (clock: { now: number }) =>
    new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000, now: () => clock.now });

  it('opens after the threshold of consecutive failures, not before', () => {
    const clock = { now: 0 };
    const breaker = breakerAt(clock);
    assert.equal(breaker.failed(), false);
    assert.equal(breaker.failed(), false);
    assert.equal(breaker.tryAcquire(), true);
    assert.equal(breaker.failed(), true);
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.tryAcquire(), false);
  });

  it('forgets failures after a success', () => {
    const breaker = breakerAt({ now: 0 });
    breaker.failed();
    breaker.failed();
    breaker.succeeded();
    breaker.failed();
    assert.equal(breaker.state, 'closed');
  });

  it('lets one probe through after the cool-down; its outcome closes or reopens', () => {
    const clock = { now: 0 };
    const breaker = breakerAt(clock);
    for (let i = 0; i < 3; i++) breaker.failed();
    clock.now = 1000;
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.tryAcquire(), true);
    assert.equal(breaker.tryAcquire(), false, 'only one probe at a time');
    assert.equal(breaker.failed(), true);
    assert.equal(breaker.state, 'open');
    clock.now = 2000;
    assert.equal(breaker.tryAcquire(), true);
    breaker.succeeded();
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.tryAcquire(), true);
  });
});
