import { describe, expect, it } from 'vitest';
import { identitiesOf, roleOf } from '../../src/bus/authorise.js';

describe('identities for chatops.roles', () => {
  it('are <platform>:<id> and <platform>:<group>, for any platform an adapter adds', () => {
    expect(identitiesOf({ channel: 'slack', id: 'T1:U2' })).toEqual(['slack:T1:U2']);
    expect(identitiesOf({ channel: 'discord', id: 'user:1', groups: ['role:2'] })).toEqual([
      'discord:user:1',
      'discord:role:2',
    ]);
    // A platform the core has never heard of works without a change here.
    expect(identitiesOf({ channel: 'matrix', id: '@bob:example.org', groups: ['room:ops'] })).toEqual([
      'matrix:@bob:example.org',
      'matrix:room:ops',
    ]);
  });

  it('the shell and the daemon are never authorised by roles; email matches case-insensitively', () => {
    const roles = { 'email:alice@example.org': 'admin' as const, 'cli:root': 'admin' as const };
    expect(identitiesOf({ channel: 'cli', id: 'root' })).toEqual([]);
    expect(roleOf({ channel: 'cli', id: 'root' }, roles)).toBeUndefined();
    expect(roleOf({ channel: 'email', id: 'Alice@Example.org' }, roles)).toBe('admin');
    expect(roleOf({ channel: 'slack', id: 'T1:U9' }, roles)).toBeUndefined();
  });
});
