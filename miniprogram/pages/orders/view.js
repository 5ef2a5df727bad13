// The order list as plain functions (tested without the runtime): an order
// from GET /orders turned into what the page shows.
const { formatFen } = require('../../utils/money')

// Payment (`status`) and fulfilment are separate: a refunded order keeps its
// shipping history, a paid one may not have shipped yet.
const STATUS_TEXT = { unpaid: 'Unpaid', paid: 'Paid', closed: 'Closed', refunded: 'Refunded' }
const FULFILMENT_TEXT = { unfulfilled: 'Not shipped', shipped: 'Shipped', received: 'Received' }
const LOGISTICS_TEXT = {
  express: 'Express', same_city: 'Same-city delivery', virtual: 'Virtual goods', self_pickup: 'Self pickup',
}

// Times arrive as ISO 8601 in Beijing time (+08:00): show the local part as is.
const shortTime = (iso) => (iso ? iso.slice(0, 16).replace('T', ' ') : '')

function shipmentText(shipment) {
  const kind = LOGISTICS_TEXT[shipment.logistics_type] || shipment.logistics_type
  if (shipment.logistics_type !== 'express') return kind
  return [kind, shipment.express_company, shipment.tracking_no].filter(Boolean).join(' ')
}

function toOrderView(order) {
  const fulfilment = order.fulfilment_status || 'unfulfilled'
  return {
    outTradeNo: order.out_trade_no,
    createdText: shortTime(order.created_at),
    totalText: formatFen(order.total_fee),
    status: order.status,
    statusText: STATUS_TEXT[order.status] || order.status,
    fulfilment,
    fulfilmentText: FULFILMENT_TEXT[fulfilment] || fulfilment,
    items: (order.items || []).map((it) => ({ productId: it.product_id, name: it.product_name, quantity: it.quantity })),
    shipments: (order.shipments || []).map((s) => ({ text: shipmentText(s), shippedText: shortTime(s.shipped_at) })),
    // Only a shipped order can be confirmed (the server answers 409 otherwise).
    canReceive: fulfilment === 'shipped',
  }
}

async function fetchOrders(api, next) {
  const page = await api.listOrders(next || undefined)
  return { orders: page.results.map(toOrderView), next: page.next || '' }
}

// Replaces one order in the shown list by its new state.
const replaceOrder = (orders, order) => {
  const view = toOrderView(order)
  return orders.map((o) => (o.outTradeNo === view.outTradeNo ? view : o))
}

module.exports = { toOrderView, shipmentText, fetchOrders, replaceOrder, STATUS_TEXT, FULFILMENT_TEXT }
