// ip-range-check ships no types; the matcher test compares the router against this call.
declare module 'ip-range-check' {
  function ipRangeCheck(address: string, range: string | readonly string[]): boolean | undefined;
  export = ipRangeCheck;
}
