// The catalogue as plain functions (tested without the runtime): GET /products
// pages turned into what the pages show.
const { formatFen } = require('../../utils/money')

// One product as the list and detail pages show it. `stock` null = unlimited.
function toCard(product) {
  const { id, name, description, price, stock, image } = product
  const soldOut = stock === 0
  return {
    id,
    name,
    description: description || '',
    image: image || '', // absolute URL, or none
    price,
    priceText: formatFen(price),
    stock,
    soldOut,
    stockText: soldOut ? 'Sold out' : stock === null || stock === undefined ? '' : `${stock} left`,
    requiresShipping: product.requires_shipping !== false,
  }
}

// The product as utils/cart.js stores it.
const forCart = (card) => ({
  id: card.id, name: card.name, price: card.price, stock: card.stock, requires_shipping: card.requiresShipping,
})

// One page: the first when `next` is empty, else the page `next` points to.
async function fetchProducts(api, next) {
  const page = await api.listProducts(next || undefined)
  return { cards: page.results.map(toCard), next: page.next || '', count: page.count }
}

// Appends a page to what is shown. A product added or removed meanwhile shifts
// the page boundaries, so one already shown may come again: kept once.
function append(shown, cards) {
  const seen = new Set(shown.map((c) => c.id))
  return shown.concat(cards.filter((c) => !seen.has(c.id)))
}

module.exports = { toCard, forCart, fetchProducts, append }
