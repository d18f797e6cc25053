/**
 * Whether a host name or address is the local machine: plain HTTP is allowed there only, by both the
 * coordinator (where it listens) and the nodes (where they connect). Brackets of an IPv6 literal are ignored.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return bare === 'localhost' || bare === '::1' || /^127\./.test(bare);
}
