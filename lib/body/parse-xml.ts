import { Parser } from 'xml2js';
import { PostbackError, quoteName } from '../errors';
import { isEmptyBody } from './content-type';
import {
  addField,
  assertFieldCount,
  createRecord,
  MAX_NESTING_DEPTH,
  type FieldRecord,
  type FieldValue,
} from './field-record';

/** Elements in one body; a postback template has a few dozen. */
export const MAX_XML_ELEMENTS = 1000;

// Refused before xml2js sees the body: impact.com has no reason to send a DTD, and sax's
// handling of entities has changed between releases (see the sax pin in package.json).
const DOCTYPE_OR_ENTITY = /<!\s*(?:DOCTYPE|ENTITY)/i;

// `_` and `$` are xml2js's text and attribute keys (an element with either name makes xml2js
// throw `obj[charkey].match is not a function`); `#name` is its internal tag key; and names
// inherited from Object.prototype make xml2js's `key in obj` test pick up Object.prototype
// itself as the first value of the element.
const FORBIDDEN_ELEMENT_NAMES = new Set(['$', '_', '#name', ...Object.getOwnPropertyNames(Object.prototype)]);

// Most field names start with a letter no forbidden name starts with: a look at the first
// character spares the set lookup, a string hash, on nearly every element.
const FORBIDDEN_FIRST_CHARACTERS = new Set([...FORBIDDEN_ELEMENT_NAMES].map((name) => name.charCodeAt(0)));

function mayBeForbidden(name: string): boolean {
  return FORBIDDEN_FIRST_CHARACTERS.has(name.charCodeAt(0));
}

interface SaxNode {
  readonly name: string;
}

/** The sax parser xml2js drives; @types/xml2js does not declare it. */
interface SaxHandlers {
  onopentag: (node: SaxNode) => void;
  onclosetag: (name: string) => void;
  ondoctype: (doctype: string) => void;
  onerror: (error: Error) => void;
  trackPosition: boolean;
}

/** The parts of xml2js's Parser used here beyond its declared API. */
interface ReusableParser {
  saxParser: SaxHandlers;
  reset(): void;
}

const PARSER_OPTIONS = {
  // strict keeps unknown entities an error and tag names as written; sync mode reports errors
  // to the caller (async mode swallows them, xml2js #293). Attributes carry no postback data
  // and are ignored, so a repeated attribute (which sax drops silently) cannot change an event.
  strict: true,
  async: false,
  explicitArray: true,
  explicitRoot: true,
  ignoreAttrs: true,
  xmlns: false,
};

// One parser for every body. xml2js builds a sax parser in its constructor and another when a
// parse ends, so a parser per body built two per request; reused, it builds one. Parsing is
// synchronous (async: false), so two requests never share it at once.
const sharedParser = new Parser(PARSER_OPTIONS);

// XML has five named entities; any other name, and any other capitalisation of these, is an
// error in XML. sax resolves HTML's names (`&nbsp;`, `&eacute;`) and matches names in any case
// (`&AMP;`), and which it knows has changed between its releases, so references are checked
// here, whatever sax a consumer's tree resolves. CDATA sections, comments and processing
// instructions hold no references and are skipped.
const REFERENCE_OR_SKIPPED = /<!\[CDATA\[[\s\S]*?\]\]>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>|&[^;&<\s]*;?/g;
const XML_REFERENCE = /^&(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);$/;

function checkReferences(text: string): void {
  if (!text.includes('&')) return;
  for (const [match] of text.matchAll(REFERENCE_OR_SKIPPED)) {
    if (match.startsWith('&') && !XML_REFERENCE.test(match)) {
      throw invalid(`${quoteName(match)} is not an XML entity reference (only &lt; &gt; &amp; &quot; &apos; and &#…;)`);
    }
  }
}

function invalid(message: string): PostbackError {
  return new PostbackError('body.invalid', `invalid XML: ${message}`);
}

/**
 * Parses an XML body with any root element; the root's child elements are the fields. The sax
 * parser under xml2js is watched while it runs, so depth, element count, forbidden names and
 * anything after the root are refused. That last one matters: xml2js
 * reports success when the root closes and ignores or late-throws on what follows
 * (xml2js #408, #617).
 */
export function parseXmlBody(text: string, maxFields: number): FieldRecord {
  if (DOCTYPE_OR_ENTITY.test(text)) throw invalid('DOCTYPE and ENTITY declarations are not accepted');
  if (isEmptyBody(text)) throw invalid('the body is empty');
  checkReferences(text);

  const internals = sharedParser as unknown as ReusableParser;
  const guard: { problem: string | null } = { problem: null };
  watchSaxParser(internals.saxParser, (found) => {
    guard.problem ??= found;
  });

  let result: unknown;
  let parseError: unknown;
  try {
    sharedParser.parseString(text, (error, value: unknown) => {
      if (error !== null) parseError ??= error;
      else result ??= value;
    });
  } catch (error) {
    parseError ??= error;
  }
  const failed = guard.problem !== null || parseError !== undefined || result === undefined || result === null;
  // xml2js resets itself (a fresh sax parser, no listeners) when a parse ends or reports an
  // error, but not when an error is thrown from a handler: reset it after any failure, so the
  // next body starts clean.
  if (failed) internals.reset();
  if (guard.problem !== null) throw invalid(guard.problem);
  if (failed) throw invalid(firstLine(parseError));
  return toRecord(result, maxFields);
}

function watchSaxParser(sax: SaxHandlers, report: (problem: string) => void): void {
  const { onopentag, onclosetag, onerror } = sax;
  // sax counts lines and columns on every character only to append them to its error
  // messages, of which only the first line is kept (see firstLine); xml2js gives no option
  // to turn it off.
  sax.trackPosition = false;
  let depth = 0;
  let elements = 0;
  let rootClosed = false;
  const refuse = (problem: string): never => {
    report(problem);
    throw invalid(problem);
  };

  sax.onopentag = (node) => {
    if (rootClosed) refuse('content after the root element');
    depth += 1;
    elements += 1;
    if (depth > MAX_NESTING_DEPTH) refuse(`nested deeper than ${MAX_NESTING_DEPTH} levels`);
    if (elements > MAX_XML_ELEMENTS) refuse(`more than ${MAX_XML_ELEMENTS} elements`);
    if (mayBeForbidden(node.name) && FORBIDDEN_ELEMENT_NAMES.has(node.name)) {
      refuse(`element name ${quoteName(node.name)} is not accepted`);
    }
    onopentag(node);
  };
  sax.onclosetag = (name) => {
    depth -= 1;
    if (depth === 0) rootClosed = true;
    onclosetag(name);
  };
  sax.ondoctype = () => refuse('DOCTYPE declarations are not accepted');
  sax.onerror = (error) => {
    report(rootClosed ? 'content after the root element' : firstLine(error));
    onerror(error);
  };
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : 'the document is not well-formed';
  return message.split('\n')[0] ?? message;
}

type XmlNode = string | { readonly [key: string]: readonly XmlNode[] | string };

function toRecord(result: unknown, maxFields: number): FieldRecord {
  const [root] = Object.values(result as Record<string, XmlNode>);
  const record = createRecord();
  if (root === undefined || root === '') return record;
  if (typeof root === 'string') throw invalid('the root element holds text, not field elements');
  let count = 0;
  // Object.keys rather than Object.entries: no pair array per field.
  for (const name of Object.keys(root)) {
    const values = root[name] as XmlNode[] | string;
    if (typeof values === 'string') throw invalid('the root element mixes text and field elements');
    count += 1;
    assertFieldCount(count, maxFields);
    for (const value of values) addField(record, name, toFieldValue(value, name));
  }
  return record;
}

function toFieldValue(node: XmlNode, name: string): FieldValue {
  if (typeof node === 'string') return node;
  const record = createRecord();
  for (const [child, values] of Object.entries(node)) {
    if (typeof values === 'string') throw invalid(`element ${quoteName(name)} mixes text and elements`);
    const converted = values.map((value) => toFieldValue(value, child));
    record[child] = converted.length === 1 ? (converted[0] as FieldValue) : Object.freeze(converted);
  }
  // Nested values are frozen as they are made (see FieldValue).
  return Object.freeze(record);
}
