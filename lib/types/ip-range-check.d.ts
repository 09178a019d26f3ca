// ip-range-check ships no types; this is the one call the router makes.
declare module 'ip-range-check' {
  function ipRangeCheck(address: string, range: string | readonly string[]): boolean | undefined;
  export = ipRangeCheck;
}
