// Amounts arrive as integers in fen and are shown in yuan. Formatted with
// integer arithmetic only: (fen / 100).toFixed(2) goes through binary floating
// point, which cannot hold most decimal fractions exactly.
function formatFen(fen) {
  if (!Number.isSafeInteger(fen)) throw new TypeError(`amount in fen must be an integer, got ${fen}`)
  const abs = Math.abs(fen)
  const cents = abs % 100
  const yuan = (abs - cents) / 100 // exact: abs - cents is a multiple of 100
  return `${fen < 0 ? '-' : ''}¥${yuan}.${cents < 10 ? '0' : ''}${cents}`
}

module.exports = { formatFen }
